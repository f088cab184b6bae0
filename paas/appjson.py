"""app.json: what an app asks of the platform beyond its Procfile.

Read at build time from the pushed code, checked (a mistake rejects the push with
the field that is wrong and what it should be), and kept with the release in a
normalised form, so a rollback or a config change deploys with the checks and
scripts of the code it runs. Fields the platform reads:

- `stack`: the stack to build and run on (see paas.runtime.stacks);
- `scripts.dokku.predeploy` / `scripts.predeploy`: run as a one-off in the new image
  before any traffic moves, like the Procfile's `release:`;
  `scripts.dokku.postdeploy` / `scripts.postdeploy`: run once the new dynos serve,
  before the old ones stop; a failure of either keeps the old release serving;
- `healthchecks`: Dokku's shape, per process type:
  `{"web": [{"type": "startup", "path": "/health", "content": "ok", "attempts": 3}]}`.

Everything else in app.json (name, description, env, addons...) is left alone.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from paas.errors import InvalidInput

CHECK_TYPES = ("startup", "liveness", "readiness")
# Dokku's defaults for a check's numbers.
DEFAULT_ATTEMPTS = 3
DEFAULT_WAIT = 5.0
DEFAULT_TIMEOUT = 5.0


@dataclass(frozen=True)
class HealthCheck:
    """One check of a dyno over HTTP (with a path) or TCP (without one)."""

    type: str = "startup"  # startup gates routing; liveness restarts; readiness unroutes
    name: str = ""
    path: str | None = None
    port: int | None = None  # default: the dyno's $PORT
    attempts: int = DEFAULT_ATTEMPTS
    wait: float = DEFAULT_WAIT  # seconds between attempts (and between periodic checks)
    timeout: float = DEFAULT_TIMEOUT
    initial_delay: float = 0.0
    content: str | None = None  # the body must contain it
    uptime: float | None = None  # startup only: the dyno must have stayed up this long

    @property
    def label(self) -> str:
        what = self.name or (f"GET {self.path}" if self.path else "TCP connect")
        return f"{self.type} check {what!r}"


@dataclass(frozen=True)
class AppJson:
    stack: str | None = None
    predeploy: str | None = None
    postdeploy: str | None = None
    healthchecks: dict[str, tuple[HealthCheck, ...]] = field(default_factory=dict)

    def checks(self, ptype: str, kind: str) -> list[HealthCheck]:
        return [c for c in self.healthchecks.get(ptype, ()) if c.type == kind]

    def to_json(self) -> dict[str, Any]:
        """The normalised form kept with a release; `load` reads it back."""
        data: dict[str, Any] = {}
        if self.stack:
            data["stack"] = self.stack
        scripts = {k: v for k, v in (("predeploy", self.predeploy),
                                     ("postdeploy", self.postdeploy)) if v}
        if scripts:
            data["scripts"] = scripts
        if self.healthchecks:
            data["healthchecks"] = {
                ptype: [_check_json(c) for c in checks]
                for ptype, checks in self.healthchecks.items()
            }
        return data


def parse(text: str) -> AppJson:
    """app.json's text, checked; InvalidInput names what to fix."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InvalidInput(f"app.json is not valid JSON ({exc}); fix it or remove it") from None
    return load(data)


def load(data: object) -> AppJson:
    """An app.json object (as pushed, or as kept with a release), checked."""
    if not isinstance(data, dict):
        raise InvalidInput("app.json must hold a JSON object; fix it or remove it")
    stack = data.get("stack")
    if stack is not None and not isinstance(stack, str):
        raise InvalidInput('app.json: "stack" must be a string such as "debian"')
    scripts = _object(data, "scripts")
    dokku = _object(scripts, "dokku", "scripts.")
    return AppJson(
        stack=stack or None,
        predeploy=_script(dokku, scripts, "predeploy"),
        postdeploy=_script(dokku, scripts, "postdeploy"),
        healthchecks=_healthchecks(data.get("healthchecks")),
    )


def _object(data: dict[str, Any], key: str, where: str = "") -> dict[str, Any]:
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f'app.json: "{where}{key}" must be an object')
    return value


def _script(dokku: dict[str, Any], scripts: dict[str, Any], name: str) -> str | None:
    for where, section in ((f"scripts.dokku.{name}", dokku), (f"scripts.{name}", scripts)):
        value = section.get(name)
        if value is None:
            continue
        if not isinstance(value, str) or not value.strip():
            raise InvalidInput(f'app.json: "{where}" must be a command (a non-empty string)')
        return value
    return None


def _healthchecks(value: object) -> dict[str, tuple[HealthCheck, ...]]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput('app.json: "healthchecks" must map process types to lists of '
                           'checks, like {"web": [{"type": "startup", "path": "/"}]}')
    result = {}
    for ptype, checks in value.items():
        if not isinstance(checks, list):
            raise InvalidInput(f'app.json: "healthchecks.{ptype}" must be a list of checks')
        result[ptype] = tuple(
            _check(check, f"healthchecks.{ptype}[{i}]") for i, check in enumerate(checks)
        )
    return result


def _check(raw: object, where: str) -> HealthCheck:
    if not isinstance(raw, dict):
        raise InvalidInput(f'app.json: "{where}" must be an object')
    if "command" in raw:
        raise InvalidInput(f'app.json: "{where}": command checks are not supported; '
                           'check over HTTP with "path" (and "content") instead')
    kind = raw.get("type", "startup")
    if kind not in CHECK_TYPES:
        raise InvalidInput(f'app.json: "{where}.type" must be one of {", ".join(CHECK_TYPES)}')
    path = raw.get("path")
    if path is not None and (not isinstance(path, str) or not path.startswith("/")):
        raise InvalidInput(f'app.json: "{where}.path" must be a path starting with /')
    content = raw.get("content")
    if content is not None and not isinstance(content, str):
        raise InvalidInput(f'app.json: "{where}.content" must be a string')
    if content is not None and path is None:
        raise InvalidInput(f'app.json: "{where}" checks "content" but has no "path" to get')
    name = raw.get("name", "")
    if not isinstance(name, str):
        raise InvalidInput(f'app.json: "{where}.name" must be a string')
    port = raw.get("port")
    if port is not None:
        port = int(_number(raw, "port", where, 1, 65535, whole=True))
    uptime = raw.get("uptime")
    if uptime is not None:
        uptime = _number(raw, "uptime", where, 0, 3600)
    return HealthCheck(
        type=kind,
        name=name,
        path=path,
        port=port,
        attempts=int(_number(raw, "attempts", where, 1, 100, DEFAULT_ATTEMPTS, whole=True)),
        wait=_number(raw, "wait", where, 0, 3600, DEFAULT_WAIT),
        timeout=_number(raw, "timeout", where, 0.1, 600, DEFAULT_TIMEOUT),
        initial_delay=_number(raw, "initialDelay", where, 0, 3600, 0.0),
        content=content,
        uptime=uptime,
    )


def _number(raw: dict[str, Any], key: str, where: str, low: float, high: float,
            default: float | None = None, whole: bool = False) -> float:
    value = raw.get(key, default)
    ok = isinstance(value, int | float) and not isinstance(value, bool) and low <= value <= high
    if ok and whole and value != int(value):
        ok = False
    if not ok:
        kind = "a whole number" if whole else "a number"
        raise InvalidInput(f'app.json: "{where}.{key}" must be {kind} from {low:g} to {high:g}')
    return float(value)  # type: ignore[arg-type]


def _check_json(check: HealthCheck) -> dict[str, Any]:
    """A check in app.json's own spelling, without the fields left at their default."""
    defaults = asdict(HealthCheck())
    spelled = {"initial_delay": "initialDelay"}
    return {
        spelled.get(key, key): value for key, value in asdict(check).items()
        if value != defaults[key] or key == "type"
    }
