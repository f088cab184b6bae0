"""What a dyno's processes use, read from /proc: the same for both runtimes, since a
runc container's processes are host processes under the dyno's first pid."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

_PAGE = os.sysconf("SC_PAGE_SIZE")


def _children(proc: Path) -> dict[int, list[int]]:
    """Every live process's children, by parent pid (one pass over /proc)."""
    tree: dict[int, list[int]] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # it ended while we looked
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(parent, []).append(int(entry.name))
    return tree


def _rss(proc: Path, pid: int) -> int:
    try:
        resident = int((proc / str(pid) / "statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0
    return resident * _PAGE


def memory(pids: Iterable[int], proc: Path = Path("/proc")) -> dict[int, int]:
    """Resident memory in bytes of each process tree rooted at one of `pids`."""
    tree = _children(proc)
    result = {}
    for root in pids:
        total, todo, seen = 0, [root], set()
        while todo:
            pid = todo.pop()
            if pid in seen:
                continue
            seen.add(pid)
            total += _rss(proc, pid)
            todo.extend(tree.get(pid, ()))
        result[root] = total
    return result
