"""The OCI runtime config (config.json) for one container: Docker's rules for combining the
container's settings with its image config, and Docker's default confinement."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .config import ContainerConfig
from .errors import ExecutorError
from .images import ImageConfig

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
INIT_PATH = "/sbin/docker-init"   # where Docker puts its init, so habits carry over
DEFAULT_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
                "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
                "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]
MASKED = ["/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
          "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
          "/sys/firmware"]
READONLY = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
CPU_PERIOD = 100_000


@dataclass
class HostMount:
    """A mount resolved to host terms: bind source path or a tmpfs."""
    type: str          # "bind" | "tmpfs"
    target: str
    source: str = ""
    options: tuple[str, ...] = ()


def resolve_args(cfg: ContainerConfig, img: ImageConfig) -> list[str]:
    """Docker: an entrypoint from the spec drops the image's CMD; otherwise the image
    ENTRYPOINT stays and the spec's command (if any) replaces the image CMD."""
    if cfg.entrypoint:
        argv = list(cfg.entrypoint) + list(cfg.command or [])
    else:
        argv = list(img.entrypoint) + list(cfg.command or img.cmd)
    if not argv:
        raise ExecutorError(f"container {cfg.name}: no command: the image has no ENTRYPOINT "
                            "or CMD and the spec sets none")
    return argv


def merge_env(image_env: list[str], env: list[str], hostname: str) -> list[str]:
    """Image ENV, then the spec's (same key wins, order kept), plus PATH and HOSTNAME."""
    merged: dict[str, str] = {}
    for item in [DEFAULT_PATH, f"HOSTNAME={hostname}", *image_env, *env]:
        key, sep, value = item.partition("=")
        if not key:
            raise ExecutorError(f"invalid environment variable {item!r}")
        merged[key] = value if sep else ""
    return [f"{k}={v}" for k, v in merged.items()]


def _table(path: Path) -> list[list[str]]:
    try:
        return [line.split(":") for line in path.read_text().splitlines() if line and
                not line.startswith("#")]
    except OSError:
        return []


def resolve_user(user: str, rootfs: Path) -> tuple[int, int, list[int]]:
    """uid, gid and extra groups for "user[:group]" (names looked up in the image's
    /etc/passwd and /etc/group, as Docker does)."""
    if not user:
        user = "0"
    name, _, group = user.partition(":")
    passwd = _table(rootfs / "etc" / "passwd")
    groups = _table(rootfs / "etc" / "group")
    uid: int | None = None
    gid, uname = 0, None  # gid is set with uid below, whichever way uid is found
    for row in passwd:
        if len(row) >= 4 and (row[0] == name or (name.isdigit() and row[2] == name)):
            uid, gid, uname = int(row[2]), int(row[3]), row[0]
            break
    if uid is None:
        if not name.isdigit():
            raise ExecutorError(f"user {name!r} not found in the image's /etc/passwd")
        uid, gid = int(name), 0
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            match = [r for r in groups if len(r) >= 3 and r[0] == group]
            if not match:
                raise ExecutorError(f"group {group!r} not found in the image's /etc/group")
            gid = int(match[0][2])
    extra = sorted({int(r[2]) for r in groups if len(r) >= 4 and uname and
                    uname in r[3].split(",") and int(r[2]) != gid})
    return uid, gid, extra


def capabilities(cap_add: list[str], cap_drop: list[str]) -> list[str]:
    def norm(c: str) -> str:
        c = c.upper()
        return c if c.startswith("CAP_") else f"CAP_{c}"
    if any(c.upper() == "ALL" for c in cap_drop):
        caps: list[str] = []
    else:
        caps = list(DEFAULT_CAPS)
    if any(c.upper() == "ALL" for c in cap_add):
        raise ExecutorError("cap_add ALL is not supported; name the capabilities")
    caps += [norm(c) for c in cap_add if norm(c) not in caps]
    dropped = {norm(c) for c in cap_drop if c.upper() != "ALL"}
    return [c for c in caps if c not in dropped]


def rlimits(cfg: ContainerConfig) -> list[dict]:
    limits = {}      # none by default: the container inherits coveyd's, as under dockerd
    for u in cfg.ulimits:
        limits[f"RLIMIT_{u.name.upper()}"] = (u.soft, u.hard)
    return [{"type": k, "soft": s, "hard": h} for k, (s, h) in limits.items()]


def resources(cfg: ContainerConfig) -> dict:
    res: dict = {"devices": [{"allow": False, "access": "rwm"}]}
    if cfg.memory:
        # swap == memory: no swap on top, so an overrun is an OOM kill, not a slow crawl
        res["memory"] = {"limit": cfg.memory, "swap": cfg.memory}
    cpu: dict = {}
    if cfg.cpus:
        cpu.update(period=CPU_PERIOD, quota=int(cfg.cpus * CPU_PERIOD))
    if cfg.cpu_shares:
        cpu["shares"] = cfg.cpu_shares
    if cpu:
        res["cpu"] = cpu
    if cfg.pids_limit:
        res["pids"] = {"limit": cfg.pids_limit}
    return res


def base_mounts() -> list[dict]:
    return [
        {"destination": "/proc", "type": "proc", "source": "proc",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
    ]


def user_mount(m: HostMount) -> dict:
    if m.type == "tmpfs":
        return {"destination": m.target, "type": "tmpfs", "source": "tmpfs",
                "options": ["nosuid", "nodev", *m.options]}
    return {"destination": m.target, "type": "bind", "source": m.source,
            "options": ["rbind", *m.options]}


def build_spec(cfg: ContainerConfig, img: ImageConfig, *, rootfs: Path, image_rootfs: Path,
               mounts: list[HostMount], cgroups_path: str, init_binary: str = "") -> dict:
    """config.json for runc. `rootfs` is the container's own (overlay) root; users and groups
    are looked up in the image's."""
    hostname = cfg.hostname or cfg.name[:63]
    argv = resolve_args(cfg, img)
    all_mounts = list(mounts)
    if cfg.init:
        if not init_binary:
            raise ExecutorError("init: true needs an init binary (tini)")
        argv = [INIT_PATH, "--", *argv]
        all_mounts.append(HostMount("bind", INIT_PATH, init_binary, ("ro",)))
    uid, gid, extra = resolve_user(cfg.user or img.user, image_rootfs)
    caps = capabilities(cfg.cap_add, cfg.cap_drop)
    namespaces = [{"type": t} for t in ("pid", "ipc", "uts", "mount")]
    namespaces.append({"type": "network", **({"path": cfg.netns} if cfg.netns else {})})
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": uid, "gid": gid, **({"additionalGids": extra} if extra else {})},
            "args": argv,
            "env": merge_env(img.env, cfg.env, hostname),
            "cwd": cfg.workdir or img.workdir or "/",
            "capabilities": {k: caps for k in ("bounding", "effective", "permitted")},
            "rlimits": rlimits(cfg),
            "noNewPrivileges": False,
        },
        "root": {"path": str(rootfs), "readonly": cfg.read_only},
        "hostname": hostname,
        "mounts": base_mounts() + [user_mount(m) for m in all_mounts],
        "linux": {
            "cgroupsPath": cgroups_path,
            "resources": resources(cfg),
            "namespaces": namespaces,
            "sysctl": dict(cfg.sysctls),
            "maskedPaths": MASKED,
            "readonlyPaths": READONLY,
        },
    }
