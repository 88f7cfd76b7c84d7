"""A small filesystem of its own for a test or a lab host, to fill up on purpose.

tmpfs (size in bytes, grown or shrunk with `resize`): writes fail with ENOSPC when it is
full. Its fsync never fails (PLATFORM.md), so an fsync error needs a loop device; the
journal tests inject that one. Mounted at a path the caller owns; `unmount` removes it.
"""
import os
import subprocess
from pathlib import Path

FILL_ATTEMPTS = 20     # looks at the used size before giving up on a busy writer


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
        """Shrink it to what is used now: every further write that needs a block fails.
        A writer may grow it between the look and the remount (which then refuses a size
        below what is used): look again."""
        for _ in range(FILL_ATTEMPTS - 1):
            try:
                return self._shrink_to_used()
            except subprocess.CalledProcessError:
                continue
        self._shrink_to_used()

    def _shrink_to_used(self) -> None:
        stat = os.statvfs(self.path)
        used = (stat.f_blocks - stat.f_bfree) * stat.f_frsize
        subprocess.run(["mount", "-o", f"remount,size={max(used, stat.f_frsize)}", str(self.path)],
                       check=True, capture_output=True, text=True)

    def mounted(self) -> bool:
        return os.path.ismount(self.path)

    def unmount(self) -> None:
        if self.mounted():
            subprocess.run(["umount", "-l", str(self.path)], check=True, capture_output=True, text=True)
