"""An app's request metrics, read from the router's lines in its log stream.

The router writes one line per request (`at=info method=GET path="/" … dyno=web.1
connect=0ms service=12ms status=200 bytes=5`); these are plain functions from
those lines to per-minute figures, with no I/O, so they are tested on text alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_FIELD = re.compile(r'([a-z_]+)=("(?:[^"\\]|\\.)*"|\S+)')
STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx")


@dataclass(frozen=True)
class Hit:
    """One request the router served (or answered with an error)."""

    ts: float
    status: int
    service_ms: int
    dyno: str
    error_code: str | None = None


def parse_router_line(ts: float, line: str) -> Hit | None:
    """The request a router line describes, or None for any other line."""
    fields = dict(_FIELD.findall(line))
    status, service = fields.get("status", ""), fields.get("service", "")
    if not status.isdigit() or not service.endswith("ms") or not service[:-2].isdigit():
        return None
    return Hit(ts=ts, status=int(status), service_ms=int(service[:-2]),
               dyno=fields.get("dyno", ""), error_code=fields.get("code"))


def _percentile(sorted_values: list[int], fraction: float) -> int | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, int(fraction * len(sorted_values)))
    return sorted_values[index]


def summarize(hits: Iterable[Hit], now: float, minutes: int = 30) -> dict:
    """Per-minute requests, latency (p50, p95, ms) and status classes over the last
    `minutes`, oldest first, with totals over the whole window."""
    first = (int(now) // 60 - minutes + 1) * 60
    latencies: list[list[int]] = [[] for _ in range(minutes)]
    statuses = [dict.fromkeys(STATUS_CLASSES, 0) for _ in range(minutes)]
    errors: dict[str, int] = {}
    for hit in hits:
        slot = int(hit.ts - first) // 60
        if not 0 <= slot < minutes:
            continue
        latencies[slot].append(hit.service_ms)
        cls = f"{hit.status // 100}xx"
        if cls in statuses[slot]:
            statuses[slot][cls] += 1
        if hit.error_code:
            errors[hit.error_code] = errors.get(hit.error_code, 0) + 1
    buckets = []
    for slot in range(minutes):
        values = sorted(latencies[slot])
        buckets.append({"t": first + slot * 60, "requests": len(values),
                        "p50": _percentile(values, 0.50), "p95": _percentile(values, 0.95),
                        **statuses[slot]})
    everything = sorted(v for slot in latencies for v in slot)
    totals = {"requests": len(everything), "p50": _percentile(everything, 0.50),
              "p95": _percentile(everything, 0.95),
              **{cls: sum(b[cls] for b in statuses) for cls in STATUS_CLASSES},
              "errors": dict(sorted(errors.items()))}
    return {"minutes": minutes, "buckets": buckets, "totals": totals}
