"""A launcher that starts several tasks which MPI does not join into one world is refused.

The processes here are started the way such a launcher starts them: with its variables set
and no process-management interface for the MPI library, so that mpi4py initialises a world
of one. (tests/test_slurm.py does the same with a real ``srun``.)
"""

import os
import subprocess
import sys

import pytest

from hpsearch.launcher import launcher_rank, several_tasks

LAUNCHER_PREFIXES = ("PMI_", "PMIX_", "MPI_", "HYDRA", "OMPI_", "SLURM_", "PALS_", "ALPS_")


def start_task(tmp_path, repo_root, launcher_env):
    environ = {k: v for k, v in os.environ.items() if not k.startswith(LAUNCHER_PREFIXES)}
    problem = os.path.join(repo_root, "tests", "problem_files", "sleepy.py")
    return subprocess.run(
        [sys.executable, "-m", "hpsearch.rs", "--problem", problem, "--max-evals", "2",
         "--workers", "1", "--output", str(tmp_path / "out")],
        cwd=tmp_path, env={**environ, **launcher_env}, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize(
    "launcher_env",
    [
        {"SLURM_STEP_NUM_TASKS": "3", "SLURM_PROCID": "0"},  # srun without --mpi=pmi2
        {"OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_RANK": "0"},  # another MPI's mpiexec
        {"PMI_SIZE": "4", "PMI_RANK": "0"},  # a PMI size without the PMI to join
    ],
)
def test_several_tasks_in_a_world_of_one_exit_2_before_any_work(tmp_path, repo_root, launcher_env):
    proc = start_task(tmp_path, repo_root, launcher_env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    # mpi4py may warn about the environment first; the refusal itself is one line
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "srun --mpi=pmi2" in errors[0], proc.stderr
    assert not (tmp_path / "out" / "results.csv").exists()


def test_only_the_first_task_says_why(tmp_path, repo_root):
    proc = start_task(tmp_path, repo_root, {"SLURM_STEP_NUM_TASKS": "3", "SLURM_PROCID": "2"})
    assert proc.returncode == 2 and proc.stderr == "", proc.stderr
    assert not (tmp_path / "out").exists()


def test_a_single_task_runs_its_local_search(tmp_path, repo_root):
    proc = start_task(tmp_path, repo_root, {"SLURM_STEP_NUM_TASKS": "1", "SLURM_PROCID": "0"})
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out" / "results.csv").exists()


def test_launcher_variables_are_read():
    assert several_tasks({"SLURM_STEP_NUM_TASKS": "5"}) == "SLURM_STEP_NUM_TASKS=5"
    assert several_tasks({"PALS_RANKID": "3"}) == "PALS_RANKID=3"
    assert several_tasks({"PALS_RANKID": "0", "SLURM_STEP_NUM_TASKS": "1"}) is None
    assert several_tasks({}) is None
    assert launcher_rank({"PMI_RANK": "7"}) == 7
    assert launcher_rank({}) is None
