"""Dyno sizes: what each size may use (memory, processes, CPU share, /tmp).

A formation entry names a size per process type (`paas ps:type web=standard-2x`);
the runtime enforces it with cgroups. The table is small on purpose: it is meant
for one modest machine first.
"""

from __future__ import annotations

from paas.errors import InvalidInput
from paas.runtime.ocispec import Limits

DEFAULT_SIZE = "standard-1x"

SIZES: dict[str, Limits] = {
    "eco": Limits(memory_mb=256, pids=128, cpu_shares=512, tmp_mb=32),
    "standard-1x": Limits(memory_mb=512, pids=256, cpu_shares=1024, tmp_mb=64),
    "standard-2x": Limits(memory_mb=1024, pids=512, cpu_shares=2048, tmp_mb=128),
    "performance-m": Limits(memory_mb=2560, pids=1024, cpu_shares=4096, tmp_mb=256),
}


def limits(size: str) -> Limits:
    try:
        return SIZES[size]
    except KeyError:
        raise InvalidInput(
            f"there is no dyno size {size!r}; choose one of: {', '.join(SIZES)}"
        ) from None


def describe(size: str) -> dict[str, int | str]:
    found = limits(size)
    return {"size": size, "memory_mb": found.memory_mb, "pids": found.pids,
            "cpu_shares": found.cpu_shares}
