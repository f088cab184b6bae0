"""The `process` driver: each dyno is a host process group in its own copy of the slug.

For development without root. There is no isolation beyond a process group
and a private working directory; the runc driver provides that. A state file
beside each dyno's directory lets a later agent find dynos an earlier one
left behind.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

from paas.runtime import DynoSpec, OutputSink, RunningDyno, records
from paas.runtime.records import process_start_time

log = logging.getLogger(__name__)

# Heroku runs the command through bash after sourcing the buildpacks' profile scripts.
_LAUNCHER = (
    'cd "$HOME" || exit 1\n'
    'for f in "$HOME"/.profile.d/*.sh; do [ -r "$f" ] && . "$f"; done\n'
    "unset f\n"
)


class ProcessDriver:
    #: Output goes through a pipe to the agent that started the dyno; it dies with that agent.
    adopts_strays = False

    def __init__(self, root: Path) -> None:
        self.root = root

    def _dir(self, spec: DynoSpec) -> Path:
        return self.root / spec.app / spec.id

    def start(self, spec: DynoSpec, output: OutputSink) -> RunningDyno:
        workdir = self._dir(spec)
        if workdir.exists():
            shutil.rmtree(workdir)
        workdir.mkdir(parents=True)
        app_dir = workdir / "app"
        app_dir.mkdir()
        # A private copy of the image's layers, bottom first, so one dyno's writes never
        # reach the release or another dyno.
        for layer in spec.layers:
            subprocess.run(["cp", "-a", "--reflink=auto", f"{layer}/.", str(app_dir)],
                           check=True)
            app_dir.chmod(0o755)
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            **spec.env,
            "HOME": str(app_dir),
            "DYNO": spec.name,
        }
        if spec.port is not None:
            env["PORT"] = str(spec.port)
        proc = subprocess.Popen(
            ["/bin/bash", "-c", _LAUNCHER + spec.command],
            cwd=app_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        records.write(workdir, spec, proc.pid, "process")
        threading.Thread(
            target=self._pump, args=(proc, output), name=f"log-{spec.id}", daemon=True
        ).start()
        return RunningDyno(spec=spec, pid=proc.pid, started_at=time.time(), handle=proc)

    @staticmethod
    def _pump(proc: subprocess.Popen[bytes], output: OutputSink) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            try:
                output(raw.decode("utf-8", "replace").rstrip("\r\n"))
            except Exception:  # a log sink failure must not kill the dyno's output pipe
                log.exception("log sink failed")
        proc.stdout.close()

    def attach(self, dyno: RunningDyno, output: OutputSink) -> None:
        """A stray's pipe ended with the agent that read it: it is stopped, never adopted."""

    def exit_reason(self, dyno: RunningDyno) -> str | None:
        return None

    def booted(self, dyno: RunningDyno) -> None:
        """Nothing: a host process group has no CPU weight of its own to raise."""

    def poll(self, dyno: RunningDyno) -> int | None:
        proc = dyno.handle
        if isinstance(proc, subprocess.Popen):
            return proc.poll()
        # An adopted stray: no Popen, only a pid.
        return None if process_start_time(dyno.pid) else -1

    def signal(self, dyno: RunningDyno, signum: int) -> None:
        try:
            os.killpg(dyno.pid, signum)
        except ProcessLookupError:
            pass

    def stop(self, dyno: RunningDyno, grace: float) -> int | None:
        self.signal(dyno, signal.SIGTERM)
        deadline = time.monotonic() + grace
        code = self.poll(dyno)
        while code is None and time.monotonic() < deadline:
            time.sleep(0.05)
            code = self.poll(dyno)
        # Children the command left behind share its process group; kill them either way.
        self.signal(dyno, signal.SIGKILL)
        proc = dyno.handle
        if isinstance(proc, subprocess.Popen):
            code = proc.wait()
        shutil.rmtree(self._dir(dyno.spec), ignore_errors=True)
        return code

    def strays(self) -> list[RunningDyno]:
        found = []
        for record in records.read_all(self.root):
            if record.alive:
                found.append(RunningDyno(spec=record.spec, pid=record.pid,
                                         started_at=record.started_at))
            else:
                shutil.rmtree(record.folder, ignore_errors=True)
        return found
