"""The executor facade: prepare, start, wait, stop, remove, inspect, list, logs, adopt.

State lives on disk, not in this object: DATA/containers/<id>/ holds the bundle
(config.json), covey.json (the ContainerConfig and times), the overlay dirs, the logs and
exit.json (written by the shim). So a restarted coveyd finds everything again (`adopt`).
Several executors on one machine never collide: each has its own data dir, run dir, runc
root, cgroup parent and name prefix.
"""
from __future__ import annotations

import asyncio
import builtins
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import EllipsisType

from . import rootfs as rootfs_mod
from .bundle import HostMount, build_spec, resolve_args, resolve_user
from .config import ContainerConfig
from .errors import ContainerNotFound, ExecutorError
from .execsession import ExecOptions, ExecSession, ExecUser
from .files import files_dir, mount_files, remove_files
from .health import HealthMonitor, HealthState, check_argv
from .images import ImageStore
from .logfile import LogEntry
from .logs import read_logs
from .runc import Runc
from .volumes import VolumeInUse, Volumes, anonymous

log = logging.getLogger(__name__)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_PKG_ROOT = str(Path(__file__).resolve().parents[2])   # where `worker` is importable from
CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass
class ExecutorSettings:
    data_dir: Path                 # images/, volumes/, containers/ under it
    run_dir: Path                  # transient files (auth files for pulls)
    runc_root: Path                # runc's --root: this executor's own state dir
    cgroup_parent: str             # e.g. "covey-<node id>": unique per coveyd on the machine
    prefix: str = "covey-"         # of runc ids; the container dir has the same name
    insecure_registries: tuple[str, ...] = ()
    runc: str = "runc"
    # static: the image may have no libc (Debian's /usr/bin/tini is dynamically linked)
    init_binary: str = "/usr/bin/tini-static"
    pull_timeout: float = 300.0
    unpack_timeout: float = 300.0
    runc_timeout: float = 30.0
    shim_timeout: float = 30.0     # from shim launch to "created"
    kill_timeout: float = 10.0     # after SIGKILL, for the exit to be recorded
    poll_interval: float = 0.05


@dataclass
class ExitStatus:
    exit_code: int
    oom_killed: bool = False
    signal: int = 0
    finished_at: float = 0.0


@dataclass
class ContainerInfo:
    name: str
    id: str                         # the runc id: prefix + name
    image: str
    image_digest: str
    status: str                     # created | running | paused | exited | dead
    pid: int = 0
    exit_code: int | None = None
    oom_killed: bool = False
    created_at: float = 0.0
    started_at: float = 0.0
    finished_at: float = 0.0
    health: dict | None = None
    config: ContainerConfig | None = None
    command: list[str] = field(default_factory=list)   # what runs: the image's unless overridden

    def to_dict(self) -> dict:
        d = dict(vars(self))
        d["config"] = self.config.to_dict() if self.config else None
        return d


class Executor:
    def __init__(self, settings: ExecutorSettings,
                 on_health: Callable[[str, HealthState], None] | None = None):
        s = self.settings = settings
        self.data_dir, self.run_dir = Path(s.data_dir), Path(s.run_dir)
        self.containers_dir = self.data_dir / "containers"
        for d in (self.containers_dir, self.run_dir, Path(s.runc_root)):
            d.mkdir(parents=True, exist_ok=True)
        self.images = ImageStore(self.data_dir / "images", self.run_dir,
                                 insecure_registries=s.insecure_registries,
                                 pull_timeout=s.pull_timeout, unpack_timeout=s.unpack_timeout)
        self.volumes = Volumes(self.data_dir / "volumes")
        self.runc = Runc(str(s.runc_root), binary=s.runc, timeout=s.runc_timeout)
        self.on_health = on_health
        self._health: dict[str, HealthMonitor] = {}

    # ---- names and files -------------------------------------------------------------
    def cid(self, name: str) -> str:
        if not _NAME.match(name):
            raise ExecutorError(f"invalid container name {name!r}: letters, digits, '_.-'")
        return self.settings.prefix + name

    def _dir(self, name: str) -> Path:
        return self.containers_dir / self.cid(name)

    def cgroups_path(self, cid: str) -> str:
        return f"/{self.settings.cgroup_parent}/{cid}"

    def _meta(self, name: str) -> dict:
        try:
            return json.loads((self._dir(name) / "covey.json").read_text())
        except FileNotFoundError:
            raise ContainerNotFound(f"no such container: {name}") from None

    def _write_meta(self, cdir: Path, meta: dict) -> None:
        tmp = cdir / "covey.json.tmp"
        tmp.write_text(json.dumps(meta))
        os.replace(tmp, cdir / "covey.json")

    @staticmethod
    def _exit(cdir: Path) -> ExitStatus | None:
        try:
            return ExitStatus(**json.loads((cdir / "exit.json").read_text()))
        except FileNotFoundError:
            return None

    # ---- lifecycle -------------------------------------------------------------------
    async def prepare(self, cfg: ContainerConfig) -> ContainerInfo:
        """Pull the image, build the root and the bundle, and `runc create` the container
        (not yet started). Raises ImageError/ExecutorError with the reason; leaves nothing."""
        cid = self.cid(cfg.name)
        cdir = self.containers_dir / cid
        if cdir.exists():
            raise ExecutorError(f"container {cfg.name} already exists")
        if cfg.healthcheck:
            check_argv(cfg.healthcheck)          # a bad test is a spec error: say it now
        image = await self.images.get(cfg.image, auth=cfg.registry_auth)
        command = resolve_args(cfg, image.config)
        cdir.mkdir(parents=True)
        try:
            self._write_meta(cdir, {"config": cfg.to_dict(), "image_digest": image.digest, "command": command,
                                    "created_at": time.time(), "started_at": 0.0})
            root = rootfs_mod.mount_overlay(image.rootfs, cdir)
            mounts = self._host_mounts(cfg, cdir)
            if cfg.files:           # last: a secret's or config's file shows over any other mount
                mounts += mount_files(files_dir(self.run_dir, cid), cfg.files)
            spec = build_spec(cfg, image.config, rootfs=root, image_rootfs=image.rootfs,
                              mounts=mounts,
                              cgroups_path=self.cgroups_path(cid),
                              init_binary=self.settings.init_binary)
            (cdir / "config.json").write_text(json.dumps(spec))
            await self._launch_shim(cfg, cid, cdir)
        except BaseException:
            await self._cleanup(cid, cdir)
            raise
        return await self.inspect(cfg.name, self._known_state(cdir, "created"))

    @staticmethod
    def _known_state(cdir: Path, status: str) -> dict:
        """What runc would say right after our own create/start (saves a `runc state`)."""
        return {"status": status, "pid": int((cdir / "init.pid").read_text())}

    def _host_mounts(self, cfg: ContainerConfig, cdir: Path) -> list[HostMount]:
        hostname = cfg.hostname or cfg.name[:63]
        (cdir / "hostname").write_text(hostname + "\n")
        hosts = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
        hosts += [f"{ip}\t{name}" for name, _, ip in (h.partition(":") for h in cfg.extra_hosts)]
        (cdir / "hosts").write_text("\n".join(hosts) + "\n")
        resolv = cfg.resolv_conf or "/etc/resolv.conf"
        shutil.copyfile(resolv, cdir / "resolv.conf") if os.path.exists(resolv) else \
            (cdir / "resolv.conf").write_text("")
        mounts = [HostMount("bind", f"/etc/{n}", str(cdir / n), ("rprivate",))
                  for n in ("hostname", "hosts", "resolv.conf")]
        for m in cfg.mounts:
            ro = ("ro",) if m.read_only else ("rw",)
            if m.type == "bind":
                if not os.path.exists(m.source):
                    raise ExecutorError(f"bind source path does not exist: {m.source}")
                mounts.append(HostMount("bind", m.target, m.source, ("rprivate", *ro)))
            elif m.type == "volume":
                src = self.volumes.ensure(m.source or anonymous(cfg.name, m.target))
                mounts.append(HostMount("bind", m.target, str(src), ("rprivate", *ro)))
            elif m.type == "tmpfs":
                opts = [f"mode={m.tmpfs_mode:o}", *ro]
                if m.tmpfs_size:
                    opts.append(f"size={m.tmpfs_size}")
                mounts.append(HostMount("tmpfs", m.target, "", tuple(opts)))
            else:
                raise ExecutorError(f"unknown mount type {m.type!r} for {m.target}")
        return mounts

    async def _launch_shim(self, cfg: ContainerConfig, cid: str, cdir: Path) -> None:
        s = self.settings
        memcg = CGROUP_ROOT / "memory" / self.cgroups_path(cid).lstrip("/")
        argv = [sys.executable, "-S", "-m", "worker.executor.shim", "--runc", s.runc,
                "--root", str(s.runc_root), "--id", cid, "--dir", str(cdir),
                "--memory-cgroup", str(memcg), "--max-size", str(cfg.log_max_size),
                "--max-files", str(cfg.log_max_files), "--create-timeout", str(s.runc_timeout)]
        with open(cdir / "shim.log", "ab") as errlog:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errlog,
                cwd=_PKG_ROOT, start_new_session=True)
        try:
            async with asyncio.timeout(s.shim_timeout):
                assert proc.stdout is not None  # stdout=PIPE above
                line = await proc.stdout.readline()
        except TimeoutError:
            proc.kill()
            raise ExecutorError(f"container {cfg.name}: runc create did not finish in "
                                f"{s.shim_timeout:g}s") from None
        try:
            msg = json.loads(line)
        except ValueError:
            err = (cdir / "shim.log").read_text()[-800:] if (cdir / "shim.log").exists() else ""
            raise ExecutorError(f"container {cfg.name}: the log shim failed: {err}") from None
        if not msg.get("ok"):
            raise ExecutorError(f"container {cfg.name}: runc create: {msg.get('error')}")

    async def start(self, name: str) -> ContainerInfo:
        cdir, cid = self._dir(name), self.cid(name)
        meta = self._meta(name)
        started = time.time()       # before: a quick container may be done when start returns
        await self.runc.start(cid)
        meta["started_at"] = started
        self._write_meta(cdir, meta)
        self._watch_health(name, ContainerConfig.from_dict(meta["config"]))
        return await self.inspect(name, self._known_state(cdir, "running"))

    async def run(self, cfg: ContainerConfig) -> ContainerInfo:
        """prepare + start."""
        await self.prepare(cfg)
        return await self.start(cfg.name)

    def _watch_health(self, name: str, cfg: ContainerConfig, started_at: float | None = None):
        if cfg.healthcheck and check_argv(cfg.healthcheck) and name not in self._health:
            mon = HealthMonitor(self.runc, self.cid(name), cfg.healthcheck,
                                on_change=lambda _cid, st: self.on_health and
                                self.on_health(name, st), started_at=started_at)
            self._health[name] = mon
            mon.start()

    async def wait(self, name: str, timeout: float | None = None) -> ExitStatus:
        """The container's exit. Raises asyncio.TimeoutError if it runs past `timeout`."""
        cdir, cid = self._dir(name), self.cid(name)
        self._meta(name)
        deadline = None if timeout is None else time.monotonic() + timeout
        checks = 0
        while True:
            status = self._exit(cdir)
            if status:
                return status
            checks += 1
            if checks % 40 == 0 and not self._shim_alive(cdir):   # the shim died: ask runc
                st = await self.runc.state(cid)
                if st is None or st["status"] == "stopped":
                    return ExitStatus(exit_code=-1, finished_at=time.time())
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"container {name} still running after {timeout:g}s")
            await asyncio.sleep(self.settings.poll_interval)

    async def stop(self, name: str, grace: float | None = None) -> ExitStatus | None:
        """The stop signal, then SIGKILL after the grace period. None if it never ran."""
        meta = self._meta(name)
        cfg = ContainerConfig.from_dict(meta["config"])
        cid, cdir = self.cid(name), self._dir(name)
        grace = cfg.stop_grace_period if grace is None else grace
        await self._stop_health(name)
        if self._exit(cdir):
            return self._exit(cdir)
        st = await self.runc.state(cid)
        if st is None or st["status"] not in ("running", "paused"):
            return None
        signal = cfg.stop_signal or "SIGTERM"
        await self.runc.kill(cid, signal)
        try:
            return await self.wait(name, grace)
        except TimeoutError:
            log.info("container %s ignored %s for %gs: SIGKILL", name, signal, grace)
        await self.runc.kill(cid, "SIGKILL")
        return await self.wait(name, self.settings.kill_timeout)

    async def remove(self, name: str, *, force: bool = False) -> None:
        """Delete the container, its root and its files (volumes stay)."""
        cid, cdir = self.cid(name), self._dir(name)
        if not cdir.exists() and await self.runc.state(cid) is None:
            raise ContainerNotFound(f"no such container: {name}")
        if not force and cdir.exists():
            st = await self.runc.state(cid)
            if st and st["status"] == "running":
                raise ExecutorError(f"container {name} is running: stop it first or force")
        await self._stop_health(name)
        await self._cleanup(cid, cdir)

    async def _cleanup(self, cid: str, cdir: Path) -> None:
        await self.runc.delete(cid, force=True)
        deadline = time.monotonic() + self.settings.kill_timeout
        while self._shim_alive(cdir) and time.monotonic() < deadline:
            await asyncio.sleep(self.settings.poll_interval)   # let it write the last lines
        rootfs_mod.unmount_all(cdir)
        remove_files(files_dir(self.run_dir, cid))
        shutil.rmtree(cdir, ignore_errors=True)

    @staticmethod
    def _shim_alive(cdir: Path) -> bool:
        try:
            pid = int((cdir / "shim.pid").read_text())
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                return b"worker.executor.shim" in f.read() and \
                    not Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
        except (FileNotFoundError, ValueError, IndexError, ProcessLookupError):
            return False

    async def _stop_health(self, name: str) -> None:
        mon = self._health.pop(name, None)
        if mon:
            await mon.stop()

    # ---- queries (also the node-local debug view: covey container ls/inspect/logs) ----
    async def inspect(self, name: str, runc_state: dict | None | EllipsisType = ...) -> ContainerInfo:
        """runc_state: the container's `runc state`, None when runc has none; ... to ask runc."""
        meta = self._meta(name)
        cid, cdir = self.cid(name), self._dir(name)
        cfg = ContainerConfig.from_dict(meta["config"])
        st = await self.runc.state(cid) if runc_state is ... else runc_state
        ex = self._exit(cdir)
        if ex:
            status = "exited"
        elif st is None:
            status = "dead"
        else:
            status = {"stopped": "exited"}.get(st["status"], st["status"])
        mon = self._health.get(name)
        return ContainerInfo(
            name=name, id=cid, image=cfg.image, image_digest=meta["image_digest"], status=status,
            pid=(st or {}).get("pid", 0) if status in ("running", "created", "paused") else 0,
            exit_code=ex.exit_code if ex else (-1 if status in ("exited", "dead") else None),
            oom_killed=bool(ex and ex.oom_killed), created_at=meta["created_at"],
            started_at=meta["started_at"], finished_at=ex.finished_at if ex else 0.0,
            health=mon.state.to_dict() if mon else None, config=cfg, command=meta.get("command", []))

    async def exec(self, name: str, opts: ExecOptions) -> ExecSession:
        """Start a process in a running container (`docker exec`); the caller closes the session."""
        if not opts.argv:
            raise ExecutorError("exec needs a command to run")
        info = await self.inspect(name)
        if info.status != "running":
            raise ExecutorError(f"container {name} is not running (it is {info.status})")
        user = None
        if opts.user:   # names are the container's own: its /etc/passwd, as Docker reads it
            root = Path(json.loads((self._dir(name) / "config.json").read_text())["root"]["path"])
            uid, gid, groups = resolve_user(opts.user, root if root.is_absolute() else self._dir(name) / root)
            user = ExecUser(uid, gid, groups)
        return await ExecSession.start(self.runc.argv("exec"), self.run_dir, info.id, opts, user)

    def volume_users(self) -> dict[str, list[str]]:
        """Volume name -> the containers (in any state) that mount it."""
        users: dict[str, list[str]] = {}
        for name in self.names():
            try:
                cfg = ContainerConfig.from_dict(self._meta(name)["config"])
            except ContainerNotFound:
                continue                      # removed meanwhile
            for m in cfg.mounts:
                if m.type == "volume":
                    users.setdefault(m.source or anonymous(name, m.target), []).append(name)
        return users

    def remove_volume(self, name: str) -> None:
        """Remove a volume no container uses (VolumeInUse names them)."""
        users = self.volume_users().get(name)
        if users:
            raise VolumeInUse(f"volume {name} is in use by container(s) {', '.join(users)}")
        self.volumes.remove(name)

    def prune_volumes(self) -> tuple[list[str], int]:
        """Remove every volume no container uses: (their names, bytes freed)."""
        used = self.volume_users()
        removed, freed = [], 0
        for name in self.volumes.list():
            if name not in used:
                freed += self.volumes.size(name)
                self.volumes.remove(name)
                removed.append(name)
        return removed, freed

    def names(self) -> list[str]:
        p = self.settings.prefix
        return sorted(d.name[len(p):] for d in self.containers_dir.iterdir()
                      if d.name.startswith(p) and (d / "covey.json").exists())

    async def list(self, all: bool = False) -> list[ContainerInfo]:
        """Like `docker ps`: running (and created) ones, or every one with all=True."""
        states = {c["id"]: c for c in await self.runc.list()}
        out = []
        for name in self.names():
            try:
                info = await self.inspect(name, states.get(self.cid(name)))
            except ContainerNotFound:
                continue                      # removed meanwhile
            if all or info.status in ("running", "created", "paused"):
                out.append(info)
        return out

    async def logs(self, name: str, *, follow: bool = False, tail: int | None = None,
                   since: float = 0.0) -> AsyncIterator[LogEntry]:
        """Entries oldest first; with follow, new ones until the container has exited."""
        cfg = ContainerConfig.from_dict(self._meta(name)["config"])
        cdir = self._dir(name)

        def finished() -> bool:
            return self._exit(cdir) is not None or not cdir.exists() or \
                (not self._shim_alive(cdir) and (cdir / "shim.pid").exists())
        async for entry in read_logs(cdir, cfg.log_max_files, follow=follow, tail=tail,
                                     since=since, finished=finished,
                                     poll_interval=max(self.settings.poll_interval, 0.05)):
            yield entry

    def health(self, name: str) -> HealthState | None:
        mon = self._health.get(name)
        return mon.state if mon else None

    # ---- restart safety --------------------------------------------------------------
    async def adopt(self) -> builtins.list[ContainerInfo]:
        """After a coveyd restart: take back the containers this executor started (running,
        created or exited, with their exit codes), and clean up what is half made: runc
        containers with no files, files with no runc container, stray mounts."""
        p = self.settings.prefix
        states = {c["id"]: c for c in await self.runc.list() if c["id"].startswith(p)}
        kept: list[ContainerInfo] = []
        for name in self.names():
            cid, cdir = self.cid(name), self._dir(name)
            st = states.pop(cid, None)
            if st is None and self._exit(cdir) is None:
                log.warning("container %s: runc has no state and it never exited: removing", name)
                await self._cleanup(cid, cdir)
                continue
            info = await self.inspect(name, st)
            if info.status == "running" and info.config is not None:  # inspect always gives config
                meta = self._meta(name)
                self._watch_health(name, info.config, started_at=time.monotonic() -
                                   max(0.0, time.time() - meta["started_at"]))
            kept.append(info)
        for cid in states:                   # runc knows it, we have no files: delete
            log.warning("runc container %s has no files: deleting it", cid)
            await self.runc.delete(cid, force=True)
        for d in self.containers_dir.iterdir():
            if d.name.startswith(p) and not (d / "covey.json").exists():
                await self._cleanup(d.name, d)   # a prepare cut short by the restart
        files = self.run_dir / "files"
        for d in files.iterdir() if files.is_dir() else ():
            if d.name.startswith(p) and not (self.containers_dir / d.name).exists():
                remove_files(d)                  # the secrets of a container that is gone
        return kept

    async def close(self) -> None:
        """Stop health monitors; containers keep running (a restart adopts them)."""
        for name in list(self._health):
            await self._stop_health(name)

    async def destroy_all(self) -> None:
        """Remove every container of this executor and its cgroup parent (node leave, tests).
        Images and volumes stay."""
        await self.close()
        p = self.settings.prefix
        for c in await self.runc.list():
            if c["id"].startswith(p):
                await self.runc.delete(c["id"], force=True)
        for d in list(self.containers_dir.iterdir()):
            if d.name.startswith(p):
                await self._cleanup(d.name, d)
        remove_cgroup_parent(self.settings.cgroup_parent)


def cgroup_parent_for(data_dir: Path) -> str:
    """The cgroup parent of the executor of a data dir: one per data dir, so several coveyd
    on one machine (the lab) never collide, and the lab can find a host's by name."""
    return "covey-" + hashlib.sha256(str(Path(data_dir).resolve()).encode()).hexdigest()[:10]


def remove_cgroup_parent(parent: str) -> None:
    """rmdir the parent in every v1 hierarchy (runc removes only the containers' own)."""
    for hierarchy in CGROUP_ROOT.iterdir():
        path = hierarchy / parent
        if path.is_dir() and not path.is_symlink():
            for child in sorted(path.glob("**/"), key=lambda q: len(q.parts), reverse=True):
                try:
                    child.rmdir()
                except OSError:
                    pass
