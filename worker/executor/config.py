"""The executor's input: one container, as plain data (no protobuf).

Field names follow Docker's: `entrypoint` overrides the image ENTRYPOINT, `command` (Docker's
CMD, a service's args) overrides the image CMD. None means "use the image's"; an empty list
for `command` also means the image's, as in Docker.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any


@dataclass
class Mount:
    type: str                       # "bind" | "volume" | "tmpfs"
    target: str
    source: str = ""                # host path (bind) or volume name (volume)
    read_only: bool = False
    tmpfs_size: int = 0             # bytes; 0 = kernel default (half of RAM)
    tmpfs_mode: int = 0o1777


@dataclass
class ContainerFile:
    """A secret or config file: `data` lives in memory and on the container's own tmpfs only,
    never on disk (ContainerConfig.to_dict leaves it out)."""
    target: str                     # absolute path in the container
    uid: int = 0
    gid: int = 0
    mode: int = 0o444
    data: bytes = field(default=b"", repr=False)


@dataclass
class Healthcheck:
    test: list[str]                 # ["CMD", arg...] | ["CMD-SHELL", "cmd"] | ["NONE"]
    interval: float = 30.0
    timeout: float = 30.0
    retries: int = 3
    start_period: float = 0.0


@dataclass
class Ulimit:
    name: str                       # "nofile", "nproc", ... (Docker's names)
    soft: int
    hard: int


@dataclass
class ContainerConfig:
    name: str                       # unique per executor, e.g. the task id; the runc id is prefix+name
    image: str                      # REGISTRY/NAME:TAG or REGISTRY/NAME@sha256:...
    entrypoint: list[str] | None = None
    command: list[str] | None = None
    env: list[str] = field(default_factory=list)       # "KEY=VALUE", over the image's ENV
    workdir: str = ""
    user: str = ""                  # "uid[:gid]" or "name[:group]"
    hostname: str = ""
    read_only: bool = False
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    sysctls: dict[str, str] = field(default_factory=dict)
    ulimits: list[Ulimit] = field(default_factory=list)
    init: bool = False              # run tini as PID 1
    netns: str = ""                 # path of a network namespace to join; "" = a new, empty one
    resolv_conf: str = ""           # host file bind-mounted as /etc/resolv.conf, if set
    extra_hosts: list[str] = field(default_factory=list)  # "name:ip" lines for /etc/hosts
    memory: int = 0                 # bytes, 0 = unlimited
    cpus: float = 0.0               # CPU quota in CPUs, 0 = unlimited
    cpu_shares: int = 0
    pids_limit: int = 0
    mounts: list[Mount] = field(default_factory=list)
    healthcheck: Healthcheck | None = None
    stop_signal: str = "SIGTERM"
    stop_grace_period: float = 10.0
    log_max_size: int = 10 * 1024 * 1024   # bytes per log file
    log_max_files: int = 3                 # files kept, the current one included
    labels: dict[str, str] = field(default_factory=dict)
    registry_auth: tuple[str, str] | None = None   # (username, password) for this pull
    files: list[ContainerFile] = field(default_factory=list)   # secrets and configs, on a tmpfs

    def to_dict(self) -> dict[str, Any]:
        """What may be written to disk: no credentials, no secret or config data."""
        saved = replace(self, registry_auth=None,
                        files=[replace(f, data=b"") for f in self.files])
        d = asdict(saved)
        d.pop("registry_auth")
        for f in d["files"]:
            f.pop("data")
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ContainerConfig:
        d = dict(d)
        d["mounts"] = [Mount(**m) for m in d.get("mounts", [])]
        d["ulimits"] = [Ulimit(**u) for u in d.get("ulimits", [])]
        d["files"] = [ContainerFile(**f) for f in d.get("files", [])]   # without their data
        if d.get("healthcheck"):
            d["healthcheck"] = Healthcheck(**d["healthcheck"])
        return cls(**d)
