"""Named volumes, local driver: a directory under DATA/volumes, created on first use (by a
task's mount) or on purpose (`covey volume create`), and kept across container restarts and
re-creations until removed on purpose. Beside each volume's `_data`, `volume.json` holds what
was asked at create (labels) and when it was made."""
from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ExecutorError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
META = "volume.json"
DRIVER = "local"


class VolumeNotFound(ExecutorError):
    """No volume of that name on this node."""


class VolumeInUse(ExecutorError):
    """A container mounts the volume."""


@dataclass
class VolumeInfo:
    name: str
    mountpoint: Path
    created_at: float                # seconds since the epoch
    labels: dict[str, str] = field(default_factory=dict)
    driver: str = DRIVER


def anonymous(container: str, target: str) -> str:
    """The volume of a mount with no source: a digest, not hash(), which is salted per
    process, so a restarted coveyd or a re-created container finds the same volume."""
    return f"{container}-{hashlib.sha256(target.encode()).hexdigest()[:16]}"


def random_name() -> str:
    """As Docker names a volume created without a name: 64 hex digits."""
    return secrets.token_hex(32)


class Volumes:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, name: str) -> Path:
        if not _NAME.match(name):
            raise ExecutorError(f"invalid volume name {name!r}: use letters, digits, '_.-'")
        return self.root / name / "_data"

    def ensure(self, name: str) -> Path:
        """The volume's data dir, created if this is its first use."""
        path = self.path(name)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def create(self, name: str = "", labels: dict[str, str] | None = None) -> VolumeInfo:
        """A volume (an existing one of that name is kept, as Docker does, with its labels)."""
        name = name or random_name()
        path = self.path(name)
        if not path.is_dir():
            self.ensure(name)
            meta = path.parent / META
            tmp = meta.with_suffix(".tmp")
            tmp.write_text(json.dumps({"labels": dict(labels or {}), "created_at": time.time()}))
            os.replace(tmp, meta)
        return self.inspect(name)

    def inspect(self, name: str) -> VolumeInfo:
        path = self.path(name)
        if not path.is_dir():
            raise VolumeNotFound(f"no such volume: {name}")
        try:
            meta = json.loads((path.parent / META).read_text())
        except FileNotFoundError:
            meta = {}  # made by a task's mount: no labels, and made when its directory was
        return VolumeInfo(name, path, meta.get("created_at") or path.parent.stat().st_mtime, meta.get("labels", {}))

    def list(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if (p / "_data").is_dir())

    def size(self, name: str) -> int:
        """Bytes of the files in the volume (what removing it frees)."""
        total = 0
        for dirpath, _, files in os.walk(self.path(name)):
            for f in files:
                try:
                    total += os.lstat(os.path.join(dirpath, f)).st_size
                except FileNotFoundError:
                    pass
        return total

    def remove(self, name: str) -> None:
        if not self.path(name).is_dir():
            raise VolumeNotFound(f"no such volume: {name}")
        shutil.rmtree(self.path(name).parent, ignore_errors=False)
