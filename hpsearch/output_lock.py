"""One search at a time in an output directory.

The master of a search (and the simulator) holds an advisory lock (``flock``) on
``<output>/search.lock`` for the life of the search. The operating system drops it when the
process ends, however it ends, so a killed search never leaves a stale lock. The file stays
and names the last process that held it; only the lock itself counts, on the file that is
at that path when it is taken (a file deleted and created again is locked anew). Deleting
the file while a search runs lets a second search in.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import socket
from types import TracebackType

LOCK_FILE = "search.lock"
#: Errors of file systems that do not support ``flock`` (a search then runs unlocked).
UNSUPPORTED = (errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL)

log = logging.getLogger(__name__)


class OutputInUse(ValueError):
    """Another running search holds the output directory."""


class OutputNotLockable(ValueError):
    """The lock file of the output directory cannot be made, opened or written."""


class OutputLock:
    """Hold ``directory`` (created if needed) until :meth:`release` or process exit.

    Raises :class:`OutputInUse` naming the directory and the process (pid, host) holding it,
    :class:`OutputNotLockable` (one line) when the lock file cannot be made or written.
    """

    def __init__(self, directory: str) -> None:
        self._fd: int | None = None
        self.directory = directory
        path = os.path.join(directory, LOCK_FILE)
        #: True when the lock made the directory (see :meth:`abandon`).
        self.created = not os.path.isdir(directory)
        try:
            os.makedirs(directory, exist_ok=True)
            while not self._lock(directory, path):
                self.release()  # the file locked is no longer the one at path: lock that one
            assert self._fd is not None
            os.ftruncate(self._fd, 0)
            os.write(self._fd, f"pid {os.getpid()} on host {socket.gethostname()}\n".encode())
        except OSError as err:
            self.release()
            raise OutputNotLockable(
                f"--output {directory} cannot be locked: {err.strerror or err} ({path})"
            ) from None
        except BaseException:
            self.release()
            raise

    def _lock(self, directory: str, path: str) -> bool:
        """Open and lock ``path``; False when the file locked is not (or no longer) the one
        at ``path`` (deleted and created again in between)."""
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            with open(path) as f:
                holder = f.read().strip() or "a process that has not named itself yet"
            raise OutputInUse(
                f"--output {directory} is in use by another search ({holder})"
            ) from None
        except OSError as err:
            if err.errno not in UNSUPPORTED:
                raise
            log.warning("%s cannot be locked (%s): nothing keeps a second search out", path, err)
            return True
        locked = os.fstat(self._fd)
        try:
            current = os.stat(path)
        except FileNotFoundError:
            return False
        return (locked.st_dev, locked.st_ino) == (current.st_dev, current.st_ino)

    def release(self) -> None:
        """Let another search use the directory (closing the file drops the lock)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def abandon(self) -> None:
        """Release the directory, after bad input was found: remove the lock file, and the
        directory when the lock made it and nothing else is in it."""
        if self._fd is not None and self.created:
            with contextlib.suppress(OSError):  # unlinked while locked: a waiting search
                os.unlink(os.path.join(self.directory, LOCK_FILE))  # locks a new file
        self.release()
        if self.created:
            with contextlib.suppress(OSError):  # not empty: something else is in there
                os.rmdir(self.directory)

    def __enter__(self) -> OutputLock:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()
