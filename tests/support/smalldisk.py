"""A small filesystem of its own for a test or a lab host, to fill up on purpose.

tmpfs (size in bytes, grown or shrunk with `resize`): writes fail with ENOSPC when it is
full. Its fsync never fails (PLATFORM.md), so an fsync error needs a loop device; the
journal tests inject that one. Mounted at a path the caller owns; `unmount` removes it.
"""
import os
import subprocess
from pathlib import Path


class SmallDisk:
    def __init__(self, path: Path, size: int):
        self.path = path
        self.size = size
        path.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
                       check=True, capture_output=True, text=True)

    def resize(self, size: int) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(self.path)],
                       check=True, capture_output=True, text=True)
        self.size = size

    def fill(self) -> None:
        """Shrink it to what is used now: every further write that needs a block fails."""
        stat = os.statvfs(self.path)
        used = (stat.f_blocks - stat.f_bfree) * stat.f_frsize
        self.resize(max(used, stat.f_frsize))

    def mounted(self) -> bool:
        return os.path.ismount(self.path)

    def unmount(self) -> None:
        if self.mounted():
            subprocess.run(["umount", "-l", str(self.path)], check=True, capture_output=True, text=True)
