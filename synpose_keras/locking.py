"""Exclusive folder locks: one process at a time converts into an ``--out`` or trains a run.

A lock is a small JSON file (the holder's pid, host, start time and command) created with
``O_CREAT | O_EXCL``, so two processes cannot both create it. A second process is refused with
the holder named. A lock whose holder is gone is *stale*: on the same host a dead pid is
detected and the lock is taken over (with a message); a lock written by another host cannot be
checked and must be removed by hand (the message says which file). Locks apply to local paths;
remote (``gs://``, ...) folders are not locked.

Example:

```python
from synpose_keras.locking import folder_lock
with folder_lock("/data/out.lock", "synpose convert rhd ..."):
    ...  # only this process writes /data/out
```
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import socket
import sys
from typing import Callable, Optional


class FolderLockedError(RuntimeError):
    """Another process holds the lock (names it, and how to clear a stale lock)."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def _holder(path: str) -> Optional[dict]:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _describe(holder: Optional[dict]) -> str:
    if not holder:
        return "an unknown process (the lock file is empty or unreadable)"
    return (f"process {holder.get('pid')} on host {holder.get('host')!r} since "
            f"{holder.get('time')} ({holder.get('command')})")


def acquire(path: str, what: str, log: Callable = print) -> dict:
    """Creates the lock file ``path``; returns its content.

    Args:
        path: str. The lock file.
        what: str. What the holder is doing (shown to a refused second process).
        log: callable. Told when a stale lock is taken over.

    Raises:
        FolderLockedError: another live process (or another host) holds it.
    """
    host = socket.gethostname()
    me = {"pid": os.getpid(), "host": host,
          "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
          "command": what or " ".join(sys.argv)}
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _holder(path)
            stale = (holder is not None and holder.get("host") == host
                     and isinstance(holder.get("pid"), int) and not _alive(holder["pid"]))
            if holder is None:  # being written right now, or cut short by a crash
                try:
                    age = datetime.datetime.now().timestamp() - os.path.getmtime(path)
                except OSError:
                    continue
                stale = age > 60
            if not stale:
                raise FolderLockedError(
                    f"{path} is held by {_describe(holder)}; only one process may write this "
                    f"folder at a time. Wait for it to finish; if that process is gone (another "
                    f"machine, or a crash), delete {path} and rerun."
                ) from None
            log(f"Taking over the stale lock {path} of {_describe(holder)}, which is no longer "
                "running.")
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        return me
    raise FolderLockedError(f"{path}: could not take the lock (another process keeps "
                            "re-creating it).")


def release(path: str, mine: dict) -> None:
    """Removes the lock file ``path`` if it is still ``mine``."""
    holder = _holder(path)
    if holder is not None and holder.get("pid") == mine["pid"] and holder.get("host") == mine["host"]:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


@contextlib.contextmanager
def folder_lock(path: Optional[str], what: str, log: Callable = print):
    """Holds the lock file ``path`` for the ``with`` block; ``None`` or a URL locks nothing."""
    if path is None or "://" in str(path):
        yield None
        return
    mine = acquire(str(path), what, log)
    try:
        yield mine
    finally:
        release(str(path), mine)
