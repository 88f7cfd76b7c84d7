"""Secret and config files: ContainerConfig never serializes their data (the executor saves
it to disk for adoption), and they are written on a real tmpfs with their owner and mode."""
import json
import os
import stat

import pytest

from worker.executor.config import ContainerConfig, ContainerFile
from worker.executor.files import mount_files, remove_files
from worker.executor.rootfs import is_mounted

SECRET = b"never-on-disk-0xC0FFEE"


def test_container_config_never_serializes_file_data():
    cfg = ContainerConfig(name="t1", image="img", registry_auth=("u", "pw"),
                          files=[ContainerFile("/run/secrets/db", uid=1, gid=2, mode=0o400, data=SECRET)])
    saved = json.dumps(cfg.to_dict())
    assert "never-on-disk" not in saved and "pw" not in saved
    assert cfg.files[0].data == SECRET and cfg.registry_auth == ("u", "pw")   # the original keeps them
    back = ContainerConfig.from_dict(json.loads(saved))
    assert back.files == [ContainerFile("/run/secrets/db", uid=1, gid=2, mode=0o400)]
    assert "never-on-disk" not in repr(cfg)


@pytest.fixture
def files_dir(tmp_path):
    directory = tmp_path / "files" / "c1"
    yield directory
    remove_files(directory)      # also when the test failed half way


def test_files_are_written_on_a_tmpfs_with_owner_and_mode(files_dir):
    files = [ContainerFile("/run/secrets/db", uid=1000, gid=1001, mode=0o400, data=SECRET),
             ContainerFile("/etc/app.conf", data=b"port=80")]
    mounts = mount_files(files_dir, files)
    assert is_mounted(files_dir)
    with open("/proc/self/mounts") as f:
        assert any(line.split()[1] == str(files_dir) and line.split()[2] == "tmpfs" for line in f)
    assert [(m.type, m.target, m.options) for m in mounts] == [
        ("bind", "/run/secrets/db", ("rprivate", "ro")), ("bind", "/etc/app.conf", ("rprivate", "ro"))]
    db = os.stat(mounts[0].source)
    assert (db.st_uid, db.st_gid, stat.S_IMODE(db.st_mode)) == (1000, 1001, 0o400)
    assert stat.S_IMODE(os.stat(mounts[1].source).st_mode) == 0o444
    assert open(mounts[0].source, "rb").read() == SECRET

    remove_files(files_dir)
    assert not is_mounted(files_dir) and not files_dir.exists()
