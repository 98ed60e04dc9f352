"""Command-line pieces shared by ``hpsearch <method>``, ``hpsearch report`` and ``hpsearch simulate``.

Bad input is reported in one line on stderr with exit status :data:`EXIT_USAGE`, before any
work starts: :class:`ArgumentParser` does so for what argparse rejects, and a command raises
:class:`UsageError` for what it finds wrong afterwards.
"""

from __future__ import annotations

import argparse
from typing import NoReturn

EXIT_USAGE = 2


class UsageError(Exception):
    """Bad command-line input: reported in one line, exit status 2."""


class ArgumentParser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line, ``PROG: error: MESSAGE``, and exit 2;
    with ``raise_errors`` set, they raise :class:`UsageError` with the message instead (the
    Python API parses its arguments with the command line's parser)."""

    raise_errors = False

    def error(self, message: str) -> NoReturn:
        if self.raise_errors:
            raise UsageError(message)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def positive_int(text: str) -> int:
    """An argparse type: an int >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """An argparse type: an int >= 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a float > 0 (NaN refused)."""
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value
