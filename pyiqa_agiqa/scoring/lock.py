"""One writer per output: an exclusive, non-blocking lock held while a scoring run writes an
output (a CSV / JSONL file of the local engine, a DST folder of the Ray engine), so that a
second run on the same output (``--overwrite`` or ``--resume`` included) is refused instead of
both reporting success while only one's rows survive. The lock dies with its process, however
it ends (``flock``), so a killed run never leaves a stale lock. A process forked while a lock
is held (DataLoader workers) closes its copy at once, so that the lock never outlives the run
that took it (a ``kill -9`` of the run, then ``--resume`` while the workers wind down)."""

from __future__ import annotations

import os
import weakref
from typing import Optional

from .contract import ScoringInputError


_HELD = weakref.WeakSet()  # the locks this process holds


def _drop_in_child() -> None:
    """After a fork: close the child's copies of the held locks' files. flock belongs to the
    open file description, so a copy kept by a child would hold the lock after the parent
    dies; closing it (without unlocking) leaves the parent's lock as it is."""
    for lock in list(_HELD):
        if lock.handle is not None:
            try:
                lock.handle.close()
            except OSError:
                pass
            lock.handle = None


if hasattr(os, 'register_at_fork'):
    os.register_at_fork(after_in_child=_drop_in_child)


class OutputLock:
    """Holds ``lock_path`` exclusively until :meth:`release` (or the end of the process).

    Raises :class:`ScoringInputError` naming ``what`` when another live process holds it.
    ``remove``: delete the lock file on release (for a hidden lock file beside an output)."""

    def __init__(self, lock_path: str, what: str, remove: bool = False):
        self.path, self.remove = lock_path, remove
        self.handle = self._acquire(what)
        _HELD.add(self)

    def _acquire(self, what: str):
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock
            return None
        for _ in range(10):  # the file may be removed by its holder between our open and our lock
            handle = open(self.path, 'a+')
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.seek(0)
                holder = handle.read().strip()
                handle.close()
                raise ScoringInputError(f'another scoring run{f" (process {holder})" if holder else ""} is writing '
                                        f'{what}: wait for it to end, or write to another output') from None
            if self._same_file(handle):
                handle.truncate(0)
                handle.write(str(os.getpid()))
                handle.flush()
                return handle
            handle.close()
        raise ScoringInputError(f'cannot lock {what} ({self.path} keeps changing): try again')

    def _same_file(self, handle) -> bool:
        try:
            return os.stat(self.path).st_ino == os.fstat(handle.fileno()).st_ino
        except FileNotFoundError:
            return False

    def release(self) -> None:
        if self.handle is None:
            return
        if self.remove:
            try:
                os.remove(self.path)
            except OSError:
                pass
        self.handle.close()  # closing releases the flock
        self.handle = None


def lock_beside(path: str) -> str:
    """The hidden lock file of an output file: ``DIR/.NAME.lock``."""
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f'.{name}.lock')


def hold_output(path: str, folder: bool = False) -> Optional[OutputLock]:
    """Lock an output file (``DIR/.NAME.lock``) or an output folder (``FOLDER/.lock``); the lock
    file is removed on release."""
    if folder:
        os.makedirs(path, exist_ok=True)
        return OutputLock(os.path.join(path, '.lock'), path, remove=True)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    return OutputLock(lock_beside(path), path, remove=True)
