"""Named volumes, local driver: a directory under DATA/volumes, created on first use and kept
across container restarts and re-creations until removed on purpose."""
from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

from .errors import ExecutorError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def anonymous(container: str, target: str) -> str:
    """The volume of a mount with no source: a digest, not hash(), which is salted per
    process, so a restarted coveyd or a re-created container finds the same volume."""
    return f"{container}-{hashlib.sha256(target.encode()).hexdigest()[:16]}"


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

    def list(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if (p / "_data").is_dir())

    def remove(self, name: str) -> None:
        shutil.rmtree(self.path(name).parent, ignore_errors=False)
