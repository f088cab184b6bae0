"""The build job: check out a pushed commit, run the buildpacks, store the image, release it.

Runs in the RQ build worker. Every line of output goes to the build's Redis
stream as it is produced, so the pusher sees the build live. A PaasError at
any step ends the build with its message; nothing that serves traffic changes
until the release has deployed.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import redis

from paas import appjson, events, procfile, releases
from paas.build import buildpack, npm_seed, source_blob, sources
from paas.build.output import BuildOutput
from paas.build.sandbox import BuildSandbox
from paas.config import Settings, redis_client, settings
from paas.errors import BuildFailed, PaasError
from paas.image import ImageConfig, image_store
from paas.runtime import stacks
from paas.runtime.stacks import Stacks
from paas.store import App, Build, Release, Store

log = logging.getLogger(__name__)

#: Top-level entries of a built app that hold its dependencies: their own image layer, so
#: a code-only redeploy stores none of them again. Yarn Plug'n'Play keeps its packages as
#: zips in .yarn/cache and its resolution map in .pnp.cjs (and .pnp.loader.mjs).
DEPENDENCY_DIRS = frozenset({".heroku", "node_modules", ".yarn", ".pnp.cjs", ".pnp.loader.mjs"})
BUILD_TIMEOUT = float(os.environ.get("PAAS_BUILD_TIMEOUT", "900"))
#: How long the push waits for the new release: its release phase, then its dynos' boot
#: and checks. A stopped agent ends the wait sooner (see releases.wait).
DEPLOY_TIMEOUT = (releases.RELEASE_PHASE_TIMEOUT
                  + float(os.environ.get("PAAS_BOOT_TIMEOUT", "60")) + 300)


def run_build(build_id: int) -> None:
    """RQ entry point."""
    s = settings()
    store = Store(s.db_path)
    r = redis_client(s)
    build = store.build(build_id)
    app = store.app_by_id(build.app_id)
    out = BuildOutput(r, build_id)
    workdir = s.builds_dir / str(build_id)
    store.set_build_status(build_id, "building")
    events.emit(r, app.name, events.BUILD_STARTED, proc="build", build=build_id,
                commit=build.commit_sha[:7])
    try:
        release = Builder(s, store, r, app, build, out, workdir).run()
    except PaasError as exc:
        for line in exc.message.splitlines():
            out.line(f" !     {line}")
        if store.build(build_id).status != "succeeded":
            store.set_build_status(build_id, "failed", exc.message)
            events.emit(r, app.name, events.BUILD_FAILED, proc="build", build=build_id)
        out.end("failed", exc.message.splitlines()[0] if exc.message else "build failed")
    except Exception:
        log.exception("build %s of %s failed", build_id, app.name)
        out.line(" !     The build failed on an internal error; the platform's log has details.")
        store.set_build_status(build_id, "failed", "internal error")
        out.end("failed", "internal error")
    else:
        out.end("succeeded", f"v{release.version}")
    finally:
        store.set_build_output(build_id, out.text())
        shutil.rmtree(workdir, ignore_errors=True)


def no_cache_requested(config: dict[str, str]) -> bool:
    """Whether an app's PAAS_NO_CACHE asks for a build from nothing: without its own build
    cache and without the platform's npm seed."""
    return config.get("PAAS_NO_CACHE", "").lower() not in ("", "0", "false", "no")


class Builder:
    def __init__(self, s: Settings, store: Store, r: redis.Redis, app: App, build: Build,
                 out: BuildOutput, workdir: Path) -> None:
        self.s, self.store, self.r = s, store, r
        self.app, self.build, self.out = app, build, out
        self.workdir = workdir
        self.stack = stacks.DEFAULT_STACK
        self.seeding: npm_seed.Seeding | None = None

    def run(self) -> Release:
        sha, out = self.build.commit_sha, self.out
        branch = self.build.ref.removeprefix("refs/heads/")
        out.line(f"-----> Building {self.app.name} from {branch} ({sha[:7]})")
        src = self.workdir / "app"
        self._checkout(src)
        # Fetching what the npm lockfile names into the platform's seed runs alongside
        # the steps up to the compile.
        no_cache = no_cache_requested(self.store.config_vars(self.app))
        self.seeding = None if no_cache else npm_seed.start(self.s.npm_seed_dir, src)
        declared = self._read_procfile(src)
        manifest = self._read_app_json(src)
        process_types = self._compile(src, declared, manifest)
        image_id = self._store_image(src, process_types)
        self.store.set_build_status(self.build.id, "succeeded")
        events.emit(self.r, self.app.name, events.BUILD_SUCCEEDED, proc="build",
                    build=self.build.id)
        user = self.store.user_by_name(self.build.user) if self.build.user else None
        release = releases.create(
            self.store, self.r, self.app,
            description=f"Deploy {sha[:7]}",
            user=user,
            build=self.build,
            slug=image_id,
            commit_sha=sha,
            process_types=process_types,
            app_json=manifest.to_json(),
        )
        out.line(f"-----> Launching v{release.version}...")
        if release.status == "pending":
            release = releases.wait(self.store, self.app, release, DEPLOY_TIMEOUT,
                                    r=self.r, on_output=self._release_phase_line)
        out.line(f"       Released v{release.version}")
        out.line(f"       {self.s.app_url(self.app.name)} deployed")
        return release

    def _checkout(self, dest: Path) -> None:
        source = self.store.build_source(self.build.id)
        if source is not None:
            self._unpack_source(source, dest)
            return
        dest.mkdir(parents=True)
        proc = subprocess.Popen(
            ["git", "--git-dir", str(self.s.repo_path(self.app.name)), "archive",
             "--format=tar", self.build.commit_sha],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert proc.stdout is not None
        with tarfile.open(fileobj=proc.stdout, mode="r|") as archive:
            archive.extractall(dest, filter="data")
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise BuildFailed(f"could not check out {self.build.commit_sha[:7]}: "
                              f"{err.decode(errors='replace').strip()}")

    def _unpack_source(self, source: str, dest: Path) -> None:
        """A build from a tarball (POST /api/apps/APP/builds): an uploaded one, or one
        fetched from its URL now."""
        if source == source_blob.UPLOADED:
            tarball = source_blob.upload_path(self.s, self.build.id)
        else:
            self.out.line(f"-----> Fetching source from {source_blob.display_url(source)}")
            tarball = self.workdir / "source.tar"
            size = source_blob.fetch(source, tarball,
                                     allow_private=self.s.source_url_allow_private)
            self.out.line(f"       {size / 1024:.0f} KiB")
        try:
            source_blob.unpack(tarball, dest)
        finally:
            tarball.unlink(missing_ok=True)

    def _read_procfile(self, src: Path) -> dict[str, str]:
        path = src / "Procfile"
        if not path.is_file():
            return {}
        return procfile.parse(path.read_text(errors="replace"))

    def _read_app_json(self, src: Path) -> appjson.AppJson:
        path = src / "app.json"
        if not path.is_file():
            return appjson.AppJson()
        try:
            manifest = appjson.parse(path.read_text(errors="replace"))
        except PaasError as exc:
            raise BuildFailed(exc.message) from None
        if manifest.predeploy or manifest.postdeploy or manifest.healthchecks:
            asked = [f"{kind} script" for kind, script in (
                ("predeploy", manifest.predeploy), ("postdeploy", manifest.postdeploy)) if script]
            asked += [f"{len(checks)} {ptype} health check(s)"
                      for ptype, checks in manifest.healthchecks.items()]
            self.out.line(f"-----> app.json: {', '.join(asked)}")
        return manifest

    def _release_phase_line(self, line: str) -> None:
        self.out.line(f"       {line}")

    def _compile(self, src: Path, declared: dict[str, str],
                 manifest: appjson.AppJson) -> dict[str, str]:
        tools = buildpack.ensure_tools(self.s.tools_dir)
        env = buildpack.build_env([tools])
        self.stack = self._choose_stack(manifest)
        env.update({"STACK": self.stack, "SOURCE_VERSION": self.build.commit_sha})
        config = self.store.config_vars(self.app)
        chosen = self._buildpacks(src, env)
        cache = self.s.cache_dir / self.app.name
        if no_cache_requested(config):
            self.out.line("-----> PAAS_NO_CACHE is set: building without the build cache")
            shutil.rmtree(cache, ignore_errors=True)
        cache.mkdir(parents=True, exist_ok=True)
        if self.seeding is not None:
            self.seeding.wait()
            env["PAAS_NPM_SEED"] = str(self.s.npm_seed_dir)
        if self.s.runtime == "runc":
            Stacks(self.s.home).get(self.stack, progress=self.out.line)
        defaults: dict[str, str] = {}
        exports: list[Path] = []
        for number, bp in enumerate(chosen, start=1):
            if len(chosen) > 1:
                self.out.line(f"=====> Buildpack {number} of {len(chosen)}: {bp.name}")
            sandbox = None
            if self.s.runtime == "runc":
                # Compiling runs the app's own code: in a container, as the app's uid.
                sandbox = BuildSandbox(self.s.home, self.app.uid,
                                       f"{self.app.name}-{self.build.id}-{number}",
                                       tools_dir=tools, stack=self.stack)
            buildpack.compile(bp, src, cache, config, env, emit=self.out.line,
                              timeout=BUILD_TIMEOUT, sandbox=sandbox, exports=exports)
            if (bp.path / "export").is_file():
                exports.append(bp.path / "export")
            # The last buildpack's process types win.
            defaults.update(buildpack.release(bp, src, env))
        self.out.line("-----> Discovering process types")
        if declared:
            self.out.line(f"       Procfile declares types     -> {', '.join(declared)}")
        if defaults:
            self.out.line(f"       Default types for buildpack -> {', '.join(defaults)}")
        process_types = {**defaults, **declared}
        if not process_types:
            raise BuildFailed(
                "no process types: add a Procfile with a web process, "
                "for example `web: gunicorn app:app`"
            )
        return process_types

    def _buildpacks(self, src: Path, env: dict[str, str]) -> list[buildpack.Buildpack]:
        """The app's buildpacks, else `.buildpacks`, else the first built-in that detects;
        each copied into the build's scratch folder, where its bin/compile may write an
        `export` file for the next one."""
        scratch = self.workdir / "buildpacks"
        entries = self.store.buildpacks(self.app)
        if not entries and (src / ".buildpacks").is_file():
            entries = sources.parse_buildpacks_file((src / ".buildpacks").read_text())
        if not entries:
            found, _ = buildpack.detect(src, buildpack.builtin_buildpacks(), env)
            entries = [found.name]
        chosen = []
        for entry in entries:
            bp = sources.resolve(entry, scratch / "fetched", self.s.home,
                                 allow_private=self.s.source_url_allow_private)
            copy = scratch / f"{len(chosen)}-{bp.name}"
            shutil.copytree(bp.path, copy, symlinks=True)
            bp = buildpack.Buildpack(bp.name, copy)
            if len(entries) > 1:
                try:
                    buildpack.detect(src, [bp], env)
                except BuildFailed:
                    raise BuildFailed(
                        f"the {bp.name} buildpack ({entry}) does not recognise this app; "
                        "remove it from the app's buildpacks or add what it looks for"
                    ) from None
            chosen.append(bp)
        return chosen

    def _choose_stack(self, manifest: appjson.AppJson) -> str:
        """The STACK config var, else app.json's "stack", else the default."""
        config = self.store.config_vars(self.app)
        name = config.get("STACK") or manifest.stack or stacks.DEFAULT_STACK
        try:
            stacks.check(name)
        except PaasError as exc:
            raise BuildFailed(exc.message) from None
        if name != "host" and self.s.runtime != "runc":
            raise BuildFailed(f"the {name} stack needs the runc runtime (PAAS_RUNTIME=runc, "
                              "as root); unset STACK to build on the host stack")
        if name != stacks.DEFAULT_STACK:
            self.out.line(f"-----> Using the {name} stack")
        return name

    def _store_image(self, src: Path, process_types: dict[str, str]) -> str:
        """Split the built app into layers (dependencies, then code) and save its image.

        Dependencies change far less often than code, so a code-only redeploy reuses the
        dependency layer byte for byte and adds only a new code layer.
        """
        images = image_store(self.s)
        present = {entry.name for entry in src.iterdir()}
        layers = []
        if present & DEPENDENCY_DIRS:
            layers.append(images.add_layer(src, include=lambda name: name in DEPENDENCY_DIRS))
        layers.append(images.add_layer(src, include=lambda name: name not in DEPENDENCY_DIRS))
        web = process_types.get("web")
        config = ImageConfig(
            env={"PORT": "5000"} if web else {},
            cmd=["/bin/bash", "-c", web] if web else None,
            working_dir="/app",
            exposed_ports=["5000/tcp"] if web else [],
            labels={"paas.app": self.app.name, "paas.commit": self.build.commit_sha,
                    "paas.stack": self.stack},
        )
        image_id = images.save_image(layers, config)
        self.out.line(f"-----> Image {image_id[:19]} ({len(layers)} layers)")
        return image_id
