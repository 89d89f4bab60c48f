"""Helpers of the serving image's tests (a uniquely named module: ``conftest`` is ambiguous)."""

from __future__ import annotations

from pathlib import Path

from client_support import processes_mentioning

from mme.local.image_container import ImageContainer, namespace_pid_map


def assert_stopped_cleanly(container: ImageContainer, engine, init_pid: int | None) -> None:
    """Stop ``container``; then no container by its name and no process of it is left."""
    members = set(namespace_pid_map(init_pid).values()) if init_pid else set()
    container.stop()
    assert engine.container_state(container.container_name) is None
    listed = engine.run("ps", "--all", "--format", "{{.Names}}").stdout.decode().split()
    assert container.container_name not in listed
    assert not [pid for pid in members if Path(f"/proc/{pid}").exists()]
    assert processes_mentioning(container.container_name) == []
