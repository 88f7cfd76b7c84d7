"""Secret and config files of a container on a tmpfs of its own, never on disk.

Each container with files gets a tmpfs at <run dir>/files/<runc id> (mode 0700: only root
on the host reads it), one file per secret or config with its uid, gid and mode, each bound
read-only at its target in the container. The tmpfs is unmounted when the container is
removed; a restarted coveyd finds it still mounted (the adopted container keeps its files).
"""
from __future__ import annotations

import ctypes
import os
from pathlib import Path

from .bundle import HostMount
from .config import ContainerFile
from .errors import ExecutorError
from .rootfs import _libc, is_mounted, unmount_all

MS_NOSUID, MS_NODEV, MS_NOEXEC = 2, 4, 8
SIZE_SLACK = 64 * 1024          # bytes beyond the files' own: inodes, directory entries


def files_dir(run_dir: Path, cid: str) -> Path:
    return run_dir / "files" / cid


def mount_files(directory: Path, files: list[ContainerFile]) -> list[HostMount]:
    """The tmpfs with the files written in it, and the bind mounts that show them."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not is_mounted(directory):
        size = sum(len(f.data) + 4096 for f in files) + SIZE_SLACK
        opts = f"mode=0700,size={size}".encode()
        if _libc.mount(b"tmpfs", str(directory).encode(), b"tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, opts) != 0:
            err = ctypes.get_errno()
            raise ExecutorError(f"mounting a tmpfs for secrets at {directory}: {os.strerror(err)}")
    mounts = []
    for index, file in enumerate(files):
        path = directory / str(index)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, file.data)
            os.fchown(fd, file.uid, file.gid)
            os.fchmod(fd, file.mode)
        finally:
            os.close(fd)
        mounts.append(HostMount("bind", file.target, str(path), ("rprivate", "ro")))
    return mounts


def remove_files(directory: Path) -> None:
    """Unmount the container's tmpfs (its files go with it) and remove the mount point."""
    unmount_all(directory)
    try:
        directory.rmdir()
    except FileNotFoundError:
        pass
