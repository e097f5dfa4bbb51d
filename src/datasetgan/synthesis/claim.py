"""The claim of a data set's finishing step, so that one process finishes it.

Several processes may end at once with every seed staged: ``--shard`` runs
started by hand, a ``torchrun`` job's rank 0, a run without a shard. Each
finishes only after creating ``OUT/.finishing`` with ``O_CREAT | O_EXCL``
(atomic on local file systems and on NFS v3 or later). The file holds the
claimant's host name, process id and start time, and is removed when the
claimant ends, whether it finished or failed.

A claim left by a process that was killed (``SIGKILL``, a power cut) is
stale. One whose host is this machine's and whose process no longer runs is
recognised and replaced automatically. One from another machine cannot be
checked from here: if that process no longer runs, remove ``OUT/.finishing``
by hand and run the command again.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

CLAIM = ".finishing"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def read_claim(out: Path) -> dict | None:
    """The claimant's record ``{"host", "pid", "started"}``, None when nobody holds the claim.

    A claim whose file is still being written (or was damaged) reads as ``{}``.
    """
    try:
        text = (Path(out) / CLAIM).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        record = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return record if isinstance(record, dict) else {}


def _is_stale(record: dict) -> bool:
    """Only a claim of this host whose process is gone is known to be stale."""
    pid = record.get("pid")
    return record.get("host") == socket.gethostname() and isinstance(pid, int) and not _alive(pid)


def _remove_stale(path: Path, record: dict) -> None:
    """Move the stale claim aside, then make sure it was that one: a process that
    recovered it first may have put a fresh claim in its place meanwhile."""
    aside = path.with_name(f"{CLAIM}.stale.{os.getpid()}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return
    try:
        moved = json.loads(aside.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        moved = None
    if moved != record:   # a live claim: put it back (unless yet another one is there now)
        try:
            os.link(aside, path)
        except OSError:
            pass
    aside.unlink(missing_ok=True)


def acquire(out: str | Path) -> dict | None:
    """Claim the finishing step of the data set in ``out``.

    Returns None when this process now holds the claim (``release`` ends it),
    else the record of the process that holds it (``{}`` when unreadable).
    """
    path = Path(out) / CLAIM
    holder: dict | None = {}
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = read_claim(Path(out))
            if holder is None:        # released meanwhile: try again
                continue
            if not _is_stale(holder):
                return holder
            _remove_stale(path, holder)
            continue
        record = {"host": socket.gethostname(), "pid": os.getpid(),
                  "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())
        return None
    return holder or {}


def release(out: str | Path) -> None:
    """End this process's claim (a claim of another process is left alone)."""
    path = Path(out) / CLAIM
    record = read_claim(Path(out))
    if record and record.get("pid") == os.getpid() and record.get("host") == socket.gethostname():
        path.unlink(missing_ok=True)


def describe(record: dict | None, out: str | Path) -> str:
    """The claimant in words, with what to do if it is gone."""
    path = Path(out) / CLAIM
    who = (f"process {record['pid']} on {record['host']} (since {record.get('started', '?')})"
           if record and "pid" in record and "host" in record else f"another process ({path})")
    return (f"{who} is finishing the data set; if it no longer runs, remove {path} and run the same "
            "command again")
