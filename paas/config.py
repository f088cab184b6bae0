"""Settings read from the environment, and the paths under $PAAS_HOME derived from them.

Every process of the platform builds its view of the world from these, so a
child started by `paas up` sees exactly what its parent saw.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import redis

from paas.errors import PaasError

#: Where git over SSH listens unless PAAS_SSH_PORT says otherwise (22 needs root and
#: is usually the host's own sshd).
DEFAULT_SSH_PORT = 2222


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
    ssh_port: int | None = None  # git over SSH; None: off
    #: Whether a build may fetch a source URL on a private or loopback address (an
    #: artifact server on the premises); off, they reach public addresses only.
    source_url_allow_private: bool = False

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

    @property
    def ssh_host_key_path(self) -> Path:
        """The SSH server's host key, made on its first start and kept, so clients that
        trusted it once keep trusting it."""
        return self.home / "ssh_host_ed25519_key"

    def repo_path(self, app: str) -> Path:
        return self.repos_dir / f"{app}.git"

    def app_url(self, app: str) -> str:
        return f"http://{app}.{self.domain}{self._port_suffix()}/"

    def platform_url(self) -> str:
        return f"http://{self.domain}{self._port_suffix()}"

    def ssh_git_url(self, app: str, host: str) -> str | None:
        """The app's git remote over SSH on `host`, or None when the SSH server is off.
        On port 22 it is the scp-like form users know from other hosts."""
        if not self.ssh_port:
            return None
        if ":" in host:  # an IPv6 address
            host = f"[{host}]"
        if self.ssh_port == 22:
            return f"git@{host}:{app}.git"
        return f"ssh://git@{host}:{self.ssh_port}/{app}.git"

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
        ssh_port=ssh_port_setting(os.environ.get("PAAS_SSH_PORT")),
        source_url_allow_private=flag_setting("PAAS_SOURCE_URL_ALLOW_PRIVATE"),
    )


def flag_setting(name: str) -> bool:
    """An on/off environment variable: 1, true, yes or on; unset, 0, false, no or off."""
    text = os.environ.get(name, "").strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("", "0", "false", "no", "off"):
        return False
    raise PaasError(f"{name}={os.environ[name]!r} is neither on nor off; give 1 or 0")


def ssh_port_setting(value: str | None) -> int | None:
    """PAAS_SSH_PORT: a port number, unset for the default, or 0 / off for no SSH server."""
    text = (value or "").strip().lower()
    if not text:
        return DEFAULT_SSH_PORT
    if text in ("0", "off"):
        return None
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise PaasError(f"PAAS_SSH_PORT={value!r} is not a port; give 1-65535, or 0 or off "
                        "to turn git over SSH off")
    return int(text)


def redis_client(s: Settings | None = None) -> redis.Redis:
    """A Redis client for the platform's Redis (bytes in, bytes out)."""
    s = s or settings()
    return redis.Redis.from_url(s.redis_url, health_check_interval=30)
