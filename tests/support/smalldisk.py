"""A small filesystem of its own for a test or a lab host, to fill up (or break) on purpose.

Two kinds, one interface (SmallDisk): mounted at a path the caller owns, `fill()` makes
every further write that needs a block fail with ENOSPC, `make_room()` undoes it, and
`unmount()` removes the disk (also after a failure).

- TmpfsDisk: memory only as used; `resize` grows or shrinks it. Its fsync never fails and
  it cannot go read-only while files are open for writing (EBUSY) (PLATFORM.md).
- LoopDisk: ext4 on a loop device whose image lives beside the mount point. It can fail
  for real: `fail_read_only()` raises a filesystem error, ext4 (errors=remount-ro) turns
  read-only and every later write or fsync fails with EROFS, also on files already open.
  Remounting it read-write is refused: `repair()` (umount, e2fsck, mount) heals it, once
  nothing has a file open on it.
"""
import errno
import os
import subprocess
from pathlib import Path

FILL_ATTEMPTS = 20     # TmpfsDisk: looks at the used size before giving up on a busy writer
E2FSCK_FIXED = 0b11    # e2fsck exit status bits of a repaired filesystem (1 corrected, 2 reboot)


def _run(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


class SmallDisk:
    """What every small disk offers; `path` is its mount point, `size` its room in bytes."""

    def __init__(self, path: Path, size: int):
        self.path = path
        self.size = size

    def fill(self) -> None:
        """Every further write that needs a block fails (ENOSPC)."""
        raise NotImplementedError

    def make_room(self) -> None:
        """Undo `fill`: its whole size is usable again."""
        raise NotImplementedError

    def mounted(self) -> bool:
        return os.path.ismount(self.path)

    def unmount(self) -> None:
        if self.mounted():
            _run("umount", "-l", str(self.path))


class TmpfsDisk(SmallDisk):
    def __init__(self, path: Path, size: int):
        super().__init__(path, size)
        path.mkdir(parents=True, exist_ok=True)
        _run("mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path))

    def resize(self, size: int) -> None:
        _run("mount", "-o", f"remount,size={size}", str(self.path))
        self.size = size

    def make_room(self) -> None:
        self.resize(self.size)

    def fill(self) -> None:
        """Shrink it to what is used now. A writer may grow it between the look and the
        remount (which then refuses a size below what is used): look again."""
        for _ in range(FILL_ATTEMPTS - 1):
            try:
                return self._shrink_to_used()
            except subprocess.CalledProcessError:
                continue
        self._shrink_to_used()

    def _shrink_to_used(self) -> None:
        stat = os.statvfs(self.path)
        used = (stat.f_blocks - stat.f_bfree) * stat.f_frsize
        _run("mount", "-o", f"remount,size={max(used, stat.f_frsize)}", str(self.path))


class LoopDisk(SmallDisk):
    """ext4 (`mkfs.ext4 -m 0`: root gets no reserve to write into) on a loop device of its
    own; the image is `<path>.img`. Loop devices are the machine's: this one is found by its
    image (`losetup -j`), never by number alone."""

    FILLER = ".filler"          # the file that takes the free space while full

    def __init__(self, path: Path, size: int):
        super().__init__(path, size)
        self.image = path.with_name(path.name + ".img")
        path.mkdir(parents=True, exist_ok=True)
        try:
            with open(self.image, "xb") as image:
                image.truncate(size)
            _run("mkfs.ext4", "-q", "-m", "0", str(self.image))
            self.device = _run("losetup", "-f", "--show", str(self.image)).strip()
            self._mount()
        except BaseException:
            self.unmount()
            raise

    def _mount(self) -> None:
        _run("mount", "-t", "ext4", "-o", "errors=remount-ro", self.device, str(self.path))
        self.path.chmod(0o700)

    def fill(self) -> None:
        """Allocate the free space to a filler file, in halving chunks down to one block (a
        writer may take some meanwhile)."""
        block = os.statvfs(self.path).f_frsize
        fd = os.open(self.path / self.FILLER, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            chunk = max(os.statvfs(self.path).f_bavail * block, block)
            while chunk >= block:
                try:
                    os.posix_fallocate(fd, os.fstat(fd).st_size, chunk)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    chunk //= 2
        finally:
            os.close(fd)

    def make_room(self) -> None:
        (self.path / self.FILLER).unlink(missing_ok=True)

    def fail_read_only(self) -> None:
        """An ext4 error, as a failing disk raises: the filesystem turns read-only at once."""
        sysfs = Path("/sys/fs/ext4") / Path(self.device).name / "trigger_fs_error"
        sysfs.write_text("covey chaos: read-only disk\n")
        probe = self.path / ".probe"
        try:
            probe.touch()
        except OSError as exc:
            if exc.errno == errno.EROFS:
                return
            raise
        probe.unlink()
        raise RuntimeError(f"{self.path} still takes writes after an ext4 error")

    def repair(self) -> None:
        """umount, e2fsck -fy, mount read-write: the only way back from an ext4 error.
        Whatever has files open on it must have ended (umount refuses otherwise)."""
        _run("umount", str(self.path))
        checked = subprocess.run(["e2fsck", "-fy", self.device], capture_output=True, text=True)
        if checked.returncode & ~E2FSCK_FIXED:
            raise RuntimeError(f"e2fsck {self.image} exited with {checked.returncode}: {checked.stdout}")
        self._mount()

    def unmount(self) -> None:
        """umount, detach every loop device of this image (the kernel detaches a busy one once
        it is free), remove the image."""
        if self.mounted():
            if subprocess.run(["umount", str(self.path)], capture_output=True).returncode != 0:
                _run("umount", "-l", str(self.path))
        attached = _run("losetup", "-j", str(self.image)) if self.image.exists() else ""
        for line in attached.splitlines():
            _run("losetup", "-d", line.split(":", 1)[0])
        self.image.unlink(missing_ok=True)
