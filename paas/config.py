"""Settings read from the environment, and the paths under $PAAS_HOME derived from them.

Every process of the platform builds its view of the world from these, so a
child started by `paas up` sees exactly what its parent saw.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import redis


def _default_runtime() -> str:
    import shutil

    if os.geteuid() == 0 and shutil.which("runc"):
        return "runc"
    return "process"


@dataclass(frozen=True)
class Settings:
    home: Path
    domain: str
    http_port: int
    redis_url_override: str | None
    runtime: str

    # --- paths -----------------------------------------------------------
    @property
    def run_dir(self) -> Path:
        """Sockets and pid files of the running platform."""
        return self.home / "run"

    @property
    def db_path(self) -> Path:
        return self.home / "paas.db"

    @property
    def admin_token_path(self) -> Path:
        return self.home / "admin.token"

    @property
    def repos_dir(self) -> Path:
        return self.home / "repos"

    @property
    def slugs_dir(self) -> Path:
        return self.home / "slugs"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    @property
    def builds_dir(self) -> Path:
        """Scratch space of builds in progress."""
        return self.home / "builds"

    @property
    def dynos_dir(self) -> Path:
        """Per-dyno working directories and state files of the process driver."""
        return self.home / "dynos"

    @property
    def tools_dir(self) -> Path:
        """Tools the platform lends to buildpacks (on their PATH)."""
        return self.home / "tools"

    @property
    def redis_socket(self) -> Path:
        return self.run_dir / "redis.sock"

    @property
    def web_socket(self) -> Path:
        return self.run_dir / "web.sock"

    @property
    def redis_url(self) -> str:
        return self.redis_url_override or f"unix://{self.redis_socket}"

    def repo_path(self, app: str) -> Path:
        return self.repos_dir / f"{app}.git"

    def app_url(self, app: str) -> str:
        return f"http://{app}.{self.domain}{self._port_suffix()}/"

    def platform_url(self) -> str:
        return f"http://{self.domain}{self._port_suffix()}"

    def _port_suffix(self) -> str:
        return "" if self.http_port == 80 else f":{self.http_port}"


def settings() -> Settings:
    """The settings of this process, read from the environment."""
    home = Path(os.environ.get("PAAS_HOME") or Path.home() / ".paas").expanduser()
    return Settings(
        home=home.absolute(),
        domain=os.environ.get("PAAS_DOMAIN", "localhost").lower().rstrip("."),
        http_port=int(os.environ.get("PAAS_HTTP_PORT", "8080")),
        redis_url_override=os.environ.get("REDIS_URL") or None,
        runtime=os.environ.get("PAAS_RUNTIME") or _default_runtime(),
    )


def redis_client(s: Settings | None = None) -> redis.Redis:
    """A Redis client for the platform's Redis (bytes in, bytes out)."""
    s = s or settings()
    return redis.Redis.from_url(s.redis_url, health_check_interval=30)
