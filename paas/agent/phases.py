"""Deploy scripts: the release phase before traffic moves, postdeploy once it has.

The release phase is app.json's predeploy script, then the Procfile's `release:`
command; postdeploy is app.json's postdeploy script. Each runs as a one-off dyno
(`release.1`, `postdeploy.1`) in the release's image with its config vars, one
after the other; the first that exits non-zero fails the step. Their output goes
to the app's log, to the release's output stream (which the push waiting for the
deploy relays as it comes) and, whole, to the release (`paas releases:output`).
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass

import redis

from paas import appjson, keys, logs
from paas.runtime import Driver, DynoSpec
from paas.runtime.ocispec import Limits
from paas.store import App, Release

#: What the release's output stream keeps, and for how long after its last line.
STREAM_LINES = 10_000
STREAM_TTL = 3600
TAIL_LINES = 20


@dataclass(frozen=True)
class Script:
    name: str  # the one-off dyno's type: "release", "predeploy", "postdeploy"
    command: str


def release_phase(release: Release) -> list[Script]:
    """What runs before a release takes traffic, in order."""
    manifest = appjson.load(release.app_json)
    scripts = []
    if manifest.predeploy:
        scripts.append(Script("predeploy", manifest.predeploy))
    if release.process_types.get("release"):
        scripts.append(Script("release", release.process_types["release"]))
    return scripts


def postdeploy(release: Release) -> list[Script]:
    manifest = appjson.load(release.app_json)
    return [Script("postdeploy", manifest.postdeploy)] if manifest.postdeploy else []


class ScriptRunner:
    """Runs a release's scripts as one-off dynos and keeps what they print."""

    def __init__(self, driver: Driver, r: redis.Redis, app: App, release: Release,
                 layers: tuple, stack: str, limits: Limits, timeout: float,
                 stopping: threading.Event) -> None:
        self.driver, self.r, self.app, self.release = driver, r, app, release
        self.layers, self.stack, self.limits = layers, stack, limits
        self.timeout = timeout
        self.stopping = stopping
        self.output: list[str] = []

    def line(self, text: str, proc: str, source: str = "app") -> None:
        """One line of output (the dyno's, or with `source` "paas" the platform's about
        it): kept, relayed to the push, and in the app's log."""
        self.output.append(text)
        stream = keys.release_log(self.app.name, self.release.version)
        try:
            with self.r.pipeline() as pipe:
                pipe.xadd(stream, {"line": text}, maxlen=STREAM_LINES)
                pipe.expire(stream, STREAM_TTL)
                pipe.execute()
            logs.append(self.r, self.app.name, source, proc, text)
        except redis.RedisError:
            pass  # the output is still kept with the release at the end

    def run(self, scripts: list[Script]) -> str | None:
        """Run `scripts` in order; the failure (with the last lines), or None."""
        for script in scripts:
            failure = self._run_one(script)
            if failure:
                return failure
        return None

    def _run_one(self, script: Script) -> str | None:
        proc = f"{script.name}.1"
        spec = DynoSpec(
            id=f"{self.app.name}.{proc}.{secrets.token_hex(3)}",
            app=self.app.name,
            name=proc,
            type=script.name,
            release=self.release.version,
            restart_seq=0,
            layers=self.layers,
            stack=self.stack,
            command=script.command,
            env=dict(self.release.config),
            uid=self.app.uid,
            limits=self.limits,
        )
        self.line(f"Running {script.name} command: {script.command}", proc, source="paas")
        mine: list[str] = []

        def output(text: str) -> None:
            mine.append(text)
            self.line(text, proc)

        try:
            run = self.driver.start(spec, output)
        except Exception as exc:  # noqa: BLE001 - any reason it could not start fails the step
            return f"the {script.name} command could not start: {exc}"
        deadline = time.monotonic() + self.timeout
        code = self.driver.poll(run)
        while code is None and time.monotonic() < deadline and not self.stopping.is_set():
            time.sleep(0.1)
            code = self.driver.poll(run)
        timed_out = code is None
        # Frees its files, and ends what it left running (or all of it, when timed out).
        stopped = self.driver.stop(run, grace=5.0 if timed_out else 0)
        code = stopped if code is None else code
        if timed_out:
            why = ("the platform is stopping" if self.stopping.is_set()
                   else f"it ran longer than {self.timeout:g} s")
            return self._failure(script, f"was stopped: {why}", mine)
        if code != 0:
            return self._failure(script, f"exited with status {code}", mine)
        self.line(f"The {script.name} command succeeded", spec.name, source="paas")
        return None

    def _failure(self, script: Script, what: str, lines: list[str]) -> str:
        reason = f"the {script.name} command ({script.command}) {what}"
        self.line(reason[0].upper() + reason[1:], f"{script.name}.1", source="paas")
        if lines:
            reason += "; its last lines:\n" + "\n".join(lines[-TAIL_LINES:])
        return reason

    def text(self) -> str:
        return "\n".join(self.output)

