"""Each container's root: an overlayfs with the unpacked image as the lower layer and the
container's own upper and work dirs, mounted under its container dir."""
from __future__ import annotations

import ctypes
import ctypes.util
import os
from pathlib import Path

from .errors import ExecutorError

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
MNT_DETACH = 2


def _unescape(path: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal."""
    return (path.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n")
            .replace("\\134", "\\"))


def mounts_under(prefix: Path) -> list[Path]:
    """Mount points at or under `prefix`, deepest first (the order to unmount them in)."""
    base = str(prefix).rstrip("/")
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = _unescape(line.split()[4])
            if point == base or point.startswith(base + "/"):
                found.append(Path(point))
    return sorted(set(found), key=lambda p: len(p.parts), reverse=True)


def is_mounted(path: Path) -> bool:
    return Path(path) in mounts_under(path)


def mount_overlay(lower: Path, container_dir: Path) -> Path:
    """Mount <container_dir>/rootfs; idempotent (adoption after a restart calls it again)."""
    upper, work, target = (container_dir / n for n in ("upper", "work", "rootfs"))
    for d in (upper, work, target):
        d.mkdir(parents=True, exist_ok=True)
    if is_mounted(target):
        return target
    opts = f"lowerdir={lower},upperdir={upper},workdir={work}".encode()
    if _libc.mount(b"overlay", str(target).encode(), b"overlay", 0, opts) != 0:
        err = ctypes.get_errno()
        raise ExecutorError(f"mounting the overlay root at {target}: {os.strerror(err)}")
    return target


def unmount_all(prefix: Path) -> None:
    """Lazily unmount everything at or under prefix; a busy mount never blocks cleanup."""
    for point in mounts_under(prefix):
        if _libc.umount2(str(point).encode(), MNT_DETACH) != 0:
            err = ctypes.get_errno()
            if err not in (22, 2):   # EINVAL / ENOENT: already gone
                raise ExecutorError(f"unmounting {point}: {os.strerror(err)}")
