"""Live processes from /proc, for tests that check what a server leaves running."""

from __future__ import annotations

from pathlib import Path

PPID, PGRP = 1, 2  # fields of /proc/<pid>/stat after the command name: state, ppid, pgrp, …


def live_processes(field: int, value: int) -> list[int]:
    """Pids of the live (not zombie) processes whose stat ``field`` (PPID or PGRP) is ``value``."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[field]) == value and fields[0] != "Z":
            out.append(int(stat.parent.name))
    return out


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
