"""Every Redis key and channel name the platform uses, built in one place.

Redis holds only what can be rebuilt from SQLite and the running host: the
build queue, the route table, log and event streams, dyno states and
heartbeats. Two features that touch the same data meet here, so a typo
cannot make them disagree.
"""

from __future__ import annotations

PREFIX = "paas"

#: RQ queue that build jobs go to.
BUILD_QUEUE = "builds"


def routes() -> str:
    """Hash: app name -> JSON route entry (see `paas.routes`)."""
    return f"{PREFIX}:routes"


def route_settings() -> str:
    """Hash: app name -> JSON of its domains, maintenance and HTTPS redirect (the API's)."""
    return f"{PREFIX}:routes:settings"


def certificates() -> str:
    """Hash: app name -> JSON of its TLS certificate chain and key, PEM (the API's)."""
    return f"{PREFIX}:routes:certs"


def routes_channel() -> str:
    """Pub/sub channel: a message (the app name) each time an app's route, settings or
    certificate changes."""
    return f"{PREFIX}:routes:changed"


def agent_wake_channel() -> str:
    """Pub/sub channel the agent listens on; any message makes it converge at once."""
    return f"{PREFIX}:agent:wake"


def agent_requests() -> str:
    """List of requests for the agent (JSON: {"app", "dyno", "action"}), e.g. `ps:stop`."""
    return f"{PREFIX}:agent:requests"


def app_log(app: str) -> str:
    """Stream of an app's log lines: fields ts, source, proc, line."""
    return f"{PREFIX}:log:{app}"


def app_events(app: str) -> str:
    """List of an app's events (JSON), newest first, capped (see `paas.events`)."""
    return f"{PREFIX}:events:{app}"


def app_event_counter(app: str) -> str:
    """Counter: the id of the app's latest event, from INCR (ids page the activity)."""
    return f"{PREFIX}:events:{app}:counter"


def release_log(app: str, version: int) -> str:
    """Stream of a release phase's output lines, then a mark when the release settles,
    read by the push waiting for it."""
    return f"{PREFIX}:release:{app}:{version}:log"


def build_log(build_id: int) -> str:
    """Stream of a build's output lines; the last entry carries `end`."""
    return f"{PREFIX}:build:{build_id}:log"


def build_chain(app: str) -> str:
    """String `JOB_ID BUILD_ID`: the app's newest build job, which its next build waits
    for (see `paas.build.worker.enqueue`)."""
    return f"{PREFIX}:builds:{app}:last"


def build_chain_lock(app: str) -> str:
    """Lock held for the moment a build of the app is queued behind the one before."""
    return f"{PREFIX}:lock:builds:{app}"


def push_lock(app: str) -> str:
    """Lock held while a push to the app is built and its ref updated."""
    return f"{PREFIX}:lock:push:{app}"


def dynos(app: str) -> str:
    """Hash: dyno name -> JSON state published by the agent."""
    return f"{PREFIX}:dynos:{app}"


def heartbeat(component: str) -> str:
    """String with a TTL, refreshed by a running component (agent, router, worker)."""
    return f"{PREFIX}:heartbeat:{component}"


def one_off_counter(app: str) -> str:
    """Counter: the number of the app's latest one-off dyno (`run.N`), from INCR."""
    return f"{PREFIX}:run:{app}:counter"


def api_rate(identity: str) -> str:
    """Counter of API requests by one token (or login name) in its rate-limit window (see
    `paas.ratelimit`)."""
    return f"{PREFIX}:ratelimit:{identity}"


def login_failures(identity: str) -> str:
    """Counter of failed logins from one client address, or for one user name, in its
    window (see `paas.ratelimit`)."""
    return f"{PREFIX}:loginfail:{identity}"
