"""One writer per folder: a lock file that names its holder, refused to a second process, taken over when stale.

``FOLDER/.lock`` holds ``{"pid", "host", "since"}`` of the process that writes the folder. It is created with
O_EXCL, so of two processes started together exactly one gets it. A lock whose holder is gone (same host, no such
process: it was killed) is stale and taken over, so ``kill -9`` and a resume need no manual step. Under torchrun the
holder is the launcher (the ranks' common parent process), so every rank of one run shares the lock and a second
launch is refused.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from fkdapp.errors import UserError
from fkdapp.ranks import is_main, world_size
from fkdapp.runtime import check_writable

LOCK_NAME = ".lock"


class LockedError(UserError):
    """Another live process writes the folder."""


def holder_identity() -> dict[str, object]:
    """This process as a lock holder: its pid (under torchrun, the launcher's) and host."""
    pid = os.getppid() if world_size() > 1 or "TORCHELASTIC_RUN_ID" in os.environ else os.getpid()
    return {"pid": pid, "host": socket.gethostname()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a process of another user: alive
        return True
    return True


class FolderLock:
    """``with FolderLock(folder, what):`` holds FOLDER/.lock while the block runs (re-entrant within a process and
    among the ranks of one torchrun job); ``what`` names the folder in the refusal (e.g. "--out runs/x")."""

    _held: dict[Path, int] = {}  # lock path -> depth, in this process

    def __init__(self, folder: str | Path, what: str | None = None) -> None:
        self.path = Path(folder) / LOCK_NAME
        self.what = what or str(folder)

    def __enter__(self) -> FolderLock:
        key = self.path.resolve()
        if key in self._held:
            self._held[key] += 1
            return self
        me = holder_identity()
        if self.path.parent.exists() and not self.path.parent.is_dir():
            raise LockedError(f"{self.what} is a file, not a folder")
        if is_main():  # one probe per folder: the other ranks of a torchrun job share rank 0's lock
            check_writable(self.path.parent, self.what)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder is None:  # being written by its creator, or torn: look again
                    time.sleep(0.05)
                    holder = self._holder()
                if holder is not None and {k: holder.get(k) for k in me} == me:
                    self._held[key] = 1  # ours: another rank of this torchrun job took it
                    self.owner = is_main()
                    return self
                if holder is not None and holder.get("host") == me["host"] and isinstance(holder.get("pid"), int) \
                        and not _alive(holder["pid"]):
                    self.path.unlink(missing_ok=True)  # stale: its holder was killed
                    continue
                if holder is None:
                    raise LockedError(f"{self.what} has an unreadable lock file {self.path}; if no process writes "
                                      "there, delete it") from None
                raise LockedError(f"{self.what} is being written by pid {holder.get('pid')} on {holder.get('host')} "
                                  f"(since {holder.get('since')}); wait, or delete its .lock if that process is "
                                  "gone") from None
            with os.fdopen(fd, "w") as f:
                json.dump({**me, "since": time.strftime("%Y-%m-%d %H:%M:%S")}, f)
            self._held[key] = 1
            self.owner = is_main()
            return self
        raise LockedError(f"could not take the lock {self.path}; if no process writes there, delete it")

    def __exit__(self, *exc: object) -> None:
        key = self.path.resolve()
        self._held[key] -= 1
        if self._held[key] == 0:
            del self._held[key]
            if self.owner:
                self.path.unlink(missing_ok=True)

    def _holder(self) -> dict | None:
        try:
            data = json.loads(self.path.read_text())
            return data if isinstance(data, dict) else None
        except (OSError, json.JSONDecodeError):
            return None
