"""Running a buildpack's `bin/compile` in a runc container, as the app's own uid.

Compiling runs code the app brings (setup.py, build scripts), so it gets what a
dyno gets: the stack's read-only root, no capabilities, a seccomp profile,
memory/pids limits, and nothing of the host but what it needs. It sees the
build, cache and env dirs, the buildpack and the platform's tools at fixed
paths (/build, /cache, /env, /buildpack, /tools) and shares the host network
so it can reach the package registries.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import threading
from pathlib import Path

from paas.build.buildpack import EXPORTS_WRAPPER
from paas.runtime import BOOT_IDLE, cgroups, ocispec
from paas.runtime.runc import RuncDriver
from paas.runtime.stacks import DEFAULT_STACK

#: A build's CPU weight against a dyno's (1024): under contention a build gets what the
#: running apps leave, so a deploy does not slow the app it replaces. The worker's nice
#: level cannot do this on its own: niceness only weighs tasks inside one cgroup, and each
#: build and each dyno has its own. Weights only count when every core is busy; then, at
#: 128, a build still gets 1/17 of the CPU against two dynos, so a saturated app can
#: still deploy its fix.
BUILD_CPU_SHARES = int(os.environ.get("PAAS_BUILD_CPU_SHARES", "128"))
#: How long a build runs idle (on CPU nobody else wants) before it gets BUILD_CPU_SHARES.
BUILD_IDLE_SECONDS = float(os.environ.get("PAAS_BUILD_IDLE_SECONDS", "20"))
BUILD_LIMITS = ocispec.Limits(memory_mb=2048, pids=1024, cpu_shares=BUILD_CPU_SHARES,
                              tmp_mb=1024)
INSIDE_BUILD, INSIDE_CACHE, INSIDE_ENV = "/build", "/cache", "/env"
INSIDE_BUILDPACK, INSIDE_TOOLS, INSIDE_EXPORTS = "/buildpack", "/tools/bin", "/exports"
INSIDE_NPM_SEED = "/seed/npm"


class BuildSandbox:
    def __init__(self, home: Path, uid: int, name: str, tools_dir: Path | None = None,
                 limits: ocispec.Limits = BUILD_LIMITS, stack: str = DEFAULT_STACK) -> None:
        self.driver = RuncDriver(home)
        self.stack = stack
        self.uid = uid
        self.tools_dir = tools_dir
        self.cid = f"paas-build-{name}-{secrets.token_hex(3)}"
        self.bundle = home / "run" / "builds" / self.cid
        self.limits = limits
        self._lift: threading.Timer | None = None

    def command(self, compile_script: Path, build_dir: Path, cache_dir: Path, env_dir: Path,
                env: dict[str, str], exports_dir: Path | None = None) -> list[str]:
        """Prepare the container and return the host command that runs the compile in it.

        The platform's npm seed (`PAAS_NPM_SEED` in `env`, a host path) is mounted
        read-only and named by its path inside."""
        stack = self.driver.stack(self.stack)
        for tree in (build_dir, cache_dir, env_dir, compile_script.parent.parent):
            _chown_tree(tree, self.uid)
        status = self.bundle / "status"
        status.mkdir(parents=True)
        os.chown(status, self.uid, self.uid)
        etc = self.bundle / "etc"
        etc.mkdir()
        (etc / "passwd").write_text(ocispec.passwd(self.uid, self.uid))
        (etc / "group").write_text(ocispec.group(self.uid))
        (etc / "hosts").write_text(ocispec.hosts("build"))
        (etc / "hostname").write_text("build\n")
        binds = [
            (str(build_dir), INSIDE_BUILD, True),
            (str(cache_dir), INSIDE_CACHE, True),
            (str(env_dir), INSIDE_ENV, False),
            # Writable: a buildpack may leave an `export` file for the next one. It is the
            # build's own copy of the buildpack.
            (str(compile_script.parent.parent), INSIDE_BUILDPACK, True),
        ]
        inside_env = dict(env)
        inside_env.update(HOME="/tmp", BUILD_DIR=INSIDE_BUILD)
        args = [f"{INSIDE_BUILDPACK}/bin/{compile_script.name}", INSIDE_BUILD, INSIDE_CACHE,
                INSIDE_ENV]
        if exports_dir is not None:
            _chown_tree(exports_dir, self.uid)
            binds.append((str(exports_dir), INSIDE_EXPORTS, False))
            inside_env["PAAS_EXPORTS"] = INSIDE_EXPORTS
            args = ["/bin/bash", "-c", EXPORTS_WRAPPER, "compile", *args]
        npm_seed = inside_env.pop("PAAS_NPM_SEED", None)
        if npm_seed is not None:
            binds.append((npm_seed, INSIDE_NPM_SEED, False))
            inside_env["PAAS_NPM_SEED"] = INSIDE_NPM_SEED
        if self.tools_dir is not None:
            uv = self.tools_dir / "uv"
            if uv.exists():
                binds.append((str(uv.resolve()), f"{INSIDE_TOOLS}/uv", False))
            inside_env["PATH"] = inside_env.get("PATH", "").replace(
                str(self.tools_dir), INSIDE_TOOLS
            )
        spec = ocispec.ContainerSpec(
            hostname="build",
            args=args,
            env=inside_env,
            uid=self.uid,
            gid=self.uid,
            rootfs=str(stack.rootfs),
            lower_dirs=[],
            upper_dir="",
            work_dir="",
            etc_dir=str(etc),
            status_dir=str(status),
            # At the top of the tree, where its idleness counts against every process
            # (paas/runtime/cgroups.py), not only the dynos.
            cgroups_path=f"/{self.cid}",
            host_dirs=stack.host_dirs,
            host_etc=stack.host_etc,
            limits=self.limits,
            binds=binds,
            cwd=INSIDE_BUILD,
        )
        config = ocispec.config(spec)
        if BOOT_IDLE:  # as a booting dyno: spare CPU first (paas.runtime.BOOT_IDLE)
            self._lift = cgroups.idle_for(f"/{self.cid}", BUILD_IDLE_SECONDS,
                                          self.limits.cpu_shares)
            if self._lift is not None:
                del config["linux"]["resources"]["cpu"]["shares"]
        (self.bundle / "config.json").write_text(json.dumps(config))
        return [self.driver.runc, "--root", str(self.driver.state_root), "run",
                "--bundle", str(self.bundle), self.cid]

    def cleanup(self) -> None:
        """Kill whatever the compile left running (its cgroup) and remove the container."""
        if self._lift is not None:
            self._lift.cancel()
        # `runc run` removes its container once the compile has ended; one still there
        # (runc killed at the build's time limit) is killed and removed here. A runc
        # start saved on every build.
        if (self.driver.state_root / self.cid).exists():
            subprocess.run([self.driver.runc, "--root", str(self.driver.state_root),
                            "delete", "--force", self.cid], capture_output=True, timeout=30)
        cgroups.remove(f"/{self.cid}")
        shutil.rmtree(self.bundle, ignore_errors=True)


def _chown_tree(root: Path, uid: int) -> None:
    os.chown(root, uid, uid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.chown(os.path.join(dirpath, name), uid, uid, follow_symlinks=False)
