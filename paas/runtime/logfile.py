"""Shipping a dyno's output from a file, so the dyno outlives the agent that reads it.

A container writes its stdout and stderr to `output.log` (opened O_APPEND by the
driver). A `LogTail` thread reads new lines and hands them on, remembering its
offset in `output.offset`; a later agent that adopts the dyno resumes there, so
nothing is shipped twice and the dyno never writes into a broken pipe. Once
everything has been read and the file is large, it is truncated in place.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from paas.runtime import OutputSink

log = logging.getLogger(__name__)

TRUNCATE_AT = 1 << 20
POLL_SECONDS = 0.05


class LogTail:
    def __init__(self, path: Path, output: OutputSink) -> None:
        self.path = path
        self.offset_path = path.with_suffix(".offset")
        self.output = output
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"tail-{path.parent.name}",
                                        daemon=True)

    def start(self) -> LogTail:
        self._thread.start()
        return self

    def stop(self, drain: bool = True) -> None:
        """Stop following; with `drain`, ship what the dyno wrote before it ended first."""
        self._stop.set()
        if drain and self._thread.is_alive():
            self._thread.join(2)

    def _saved_offset(self) -> int:
        try:
            return int(self.offset_path.read_text())
        except (OSError, ValueError):
            return 0

    def _run(self) -> None:
        offset = self._saved_offset()
        partial = b""
        try:
            f = open(self.path, "rb")  # noqa: SIM115 - read until the dyno ends
        except OSError as exc:
            log.warning("cannot follow %s: %s", self.path, exc)
            return
        with f:
            while True:
                stopping = self._stop.is_set()
                size = os.fstat(f.fileno()).st_size
                if size < offset:  # truncated under us: start again from the top
                    offset = 0
                f.seek(offset)
                chunk = f.read()
                if chunk:
                    offset += len(chunk)
                    *lines, partial = (partial + chunk).split(b"\n")
                    for line in lines:
                        self._ship(line)
                    self.offset_path.write_text(str(offset))
                    if offset >= TRUNCATE_AT and offset == os.fstat(f.fileno()).st_size:
                        os.truncate(self.path, 0)
                        offset = 0
                        self.offset_path.write_text("0")
                elif stopping:
                    if partial:
                        self._ship(partial)
                    return
                else:
                    self._stop.wait(POLL_SECONDS)

    def _ship(self, raw: bytes) -> None:
        try:
            self.output(raw.decode("utf-8", "replace").rstrip("\r"))
        except Exception:  # a failing sink must not stop the tail
            log.exception("log sink failed")
