import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def repo_root() -> str:
    return ROOT


@pytest.fixture
def faulty_problem() -> str:
    """Path of tests/problem_files/faulty.py: a run function that misbehaves on demand."""
    return os.path.join(ROOT, "tests", "problem_files", "faulty.py")
