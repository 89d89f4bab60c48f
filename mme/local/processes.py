"""Processes of ``mme local`` and the tests: free ports, process groups, and stopping a group until
none of it is left (standard library only, Linux ``/proc`` where present)."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path


class ProcessGroupError(RuntimeError):
    """Processes of a group survived SIGKILL (the message names the group)."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def group_members(pgid: int) -> list[int] | None:
    """Live (non-zombie) pids of a process group from /proc; None where /proc is unavailable."""
    proc = Path("/proc")
    if not proc.is_dir():
        return None
    members = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
        state, pgrp = fields[0], int(fields[2])
        if pgrp == pgid and state not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def group_alive(pgid: int) -> bool:
    """True while a non-zombie process of the group exists (zombies wait for their parent to reap them)."""
    members = group_members(pgid)
    if members is not None:
        return bool(members)
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_process_group(pgid: int, grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL, to every process of group ``pgid`` until none is left; raises
    :class:`ProcessGroupError` when some survive."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not group_alive(pgid):
            return
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        end = time.monotonic() + grace
        while time.monotonic() < end and group_alive(pgid):
            time.sleep(0.1)
    if group_alive(pgid):
        raise ProcessGroupError(f"processes of process group {pgid} are still alive")
