"""Whether a search still holds its output directory when it prints its last line.

``python tests/lock_probe.py OUTPUT METHOD ARGS...`` runs ``hpsearch.cli.main(METHOD,
ARGS)`` (under mpirun too) with a standard output that tries to lock OUTPUT when the
search prints "results written to"; the answer follows as a line of its own.
"""

from __future__ import annotations

import io
import sys

from hpsearch.output_lock import OutputInUse, OutputLock

LAST_LINE = "results written to"
HELD = "lock held at the last line: "


class LockProbe(io.TextIOBase):
    """Passes text through to ``stream``; the first time the search's last line comes, tries
    to take the lock of ``output`` (held elsewhere in this process, it is refused)."""

    def __init__(self, stream, output: str) -> None:
        self.stream, self.output = stream, output
        self.held: bool | None = None

    def write(self, text: str) -> int:
        if self.held is None and text.startswith(LAST_LINE):
            try:
                OutputLock(self.output).release()
                self.held = False
            except OutputInUse:
                self.held = True
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()


if __name__ == "__main__":
    from hpsearch.cli import main

    probe = LockProbe(sys.stdout, sys.argv[1])
    sys.stdout = probe
    code = main(sys.argv[2], sys.argv[3:])
    sys.stdout = probe.stream
    if probe.held is not None:
        print(HELD + str(probe.held))
    sys.exit(code)
