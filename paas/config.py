"""Settings read from the environment, and the paths under $PAAS_HOME derived from them.

Every process of the platform builds its view of the world from these, so a
child started by `paas up` sees exactly what its parent saw.
"""

from __future__ import annotations

import ipaddress
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
    def npm_seed_dir(self) -> Path:
        """Package tarballs from the npm registry shared by every app's builds
        (paas/build/npm_seed.py)."""
        return self.home / "seeds" / "npm"

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


@dataclass(frozen=True)
class RouterSettings:
    """The router's own settings (README, "Settings"), read by `router_settings()`."""

    host: str  # PAAS_ROUTER_HOST
    https_port: int | None  # PAAS_HTTPS_PORT; None: no HTTPS listener
    public_https_port: int | None  # PAAS_PUBLIC_HTTPS_PORT; None: https_port
    tls_cert: Path  # PAAS_TLS_CERT: the platform certificate
    tls_key: Path  # PAAS_TLS_KEY
    trusted_proxies: tuple[str, ...]  # PAAS_TRUSTED_PROXIES: addresses or CIDR networks
    workers: int | None  # PAAS_ROUTER_WORKERS; None: one per core
    max_conns_per_ip: int  # PAAS_ROUTER_MAX_CONNS_PER_IP


def router_settings(s: Settings | None = None) -> RouterSettings:
    """The router's settings from the environment; a PaasError names a malformed one."""
    s = s or settings()
    env = os.environ
    https_port = port_setting("PAAS_HTTPS_PORT", env.get("PAAS_HTTPS_PORT"), 8443, off=True)
    workers_text = (env.get("PAAS_ROUTER_WORKERS") or "").strip().lower()
    if workers_text in ("", "0", "auto"):
        workers = None
    elif workers_text.isdigit():
        workers = int(workers_text)
    else:
        raise PaasError(f"PAAS_ROUTER_WORKERS={workers_text!r} is not a number; give a "
                        "number of processes, or auto (or 0) for one per core")
    trusted = tuple(p.strip() for p in env.get("PAAS_TRUSTED_PROXIES", "").split(",")
                    if p.strip())
    for entry in trusted:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise PaasError(f"PAAS_TRUSTED_PROXIES: {entry!r} is neither an IP address nor a "
                            "network; give addresses or CIDR networks, comma-separated, "
                            "e.g. 10.0.0.7,192.168.0.0/16") from None
    max_conns = (env.get("PAAS_ROUTER_MAX_CONNS_PER_IP") or "512").strip()
    if not max_conns.isdigit() or int(max_conns) < 1:
        raise PaasError(f"PAAS_ROUTER_MAX_CONNS_PER_IP={max_conns!r} is not a positive number")
    return RouterSettings(
        host=env.get("PAAS_ROUTER_HOST") or "0.0.0.0",
        https_port=https_port,
        public_https_port=port_setting("PAAS_PUBLIC_HTTPS_PORT",
                                       env.get("PAAS_PUBLIC_HTTPS_PORT"), None, off=True),
        tls_cert=Path(env.get("PAAS_TLS_CERT") or s.home / "tls" / "platform.crt"),
        tls_key=Path(env.get("PAAS_TLS_KEY") or s.home / "tls" / "platform.key"),
        trusted_proxies=trusted,
        workers=workers,
        max_conns_per_ip=int(max_conns),
    )


def port_setting(name: str, value: str | None, default: int | None,
                 off: bool = False) -> int | None:
    """A port variable: 1-65535, unset for `default`, and with `off` also 0 or `off`
    for none (None)."""
    text = (value or "").strip().lower()
    if not text:
        return default
    if off and text in ("0", "off"):
        return None
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise PaasError(f"{name}={value!r} is not a port; give 1-65535"
                        + (", or 0 or off for none" if off else ""))
    return int(text)


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
    return port_setting("PAAS_SSH_PORT", value, DEFAULT_SSH_PORT, off=True)


def redis_client(s: Settings | None = None) -> redis.Redis:
    """A Redis client for the platform's Redis (bytes in, bytes out)."""
    s = s or settings()
    return redis.Redis.from_url(s.redis_url, health_check_interval=30)
