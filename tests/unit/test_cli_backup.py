"""`covey swarm backup`: --verify needs no daemon and names what is wrong with a file; the
passphrase comes from a file or a terminal, never empty; a backup is written privately."""
import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from covey import backupfile as bf
from covey.cli import swarm
from covey.errors import InvalidArgument, Unavailable
from proto import backup_pb2

REPO = Path(__file__).resolve().parents[2]


def covey(*args):
    return subprocess.run([sys.executable, "-m", "covey.cli.main", "-H", "unix:///nonexistent.sock", *args],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, cwd=REPO)


@pytest.fixture
def files(tmp_path):
    backup = backup_pb2.Backup(format_version=bf.CONTENTS_VERSION, raft_index=17, created_at_ns=10**18)
    backup.store.clusters.add(id="c" * 25)
    backup.store.nodes.add(id="n1")
    (tmp_path / "pass").write_text("s3cret\nignored second line\n")
    (tmp_path / "wrong").write_text("other\n")
    sealed = bf.seal(backup, "s3cret", bf.ScryptParams(log2_n=10))
    (tmp_path / "b.cvyb").write_bytes(sealed)
    (tmp_path / "short.cvyb").write_bytes(sealed[:-10])
    return tmp_path


def test_verify_needs_no_daemon_and_prints_the_summary(files):
    result = covey("swarm", "backup", "--verify", str(files / "b.cvyb"), "--passphrase-file", str(files / "pass"))
    assert result.returncode == 0, result.stderr
    assert "is a readable backup" in result.stdout
    assert "Cluster ID:  " + "c" * 25 in result.stdout and "Raft index:  17" in result.stdout
    assert "1 cluster, 1 nodes, 0 services, 0 tasks" in result.stdout


@pytest.mark.parametrize("name, passfile, message", [
    ("b.cvyb", "wrong", "wrong passphrase"),
    ("short.cvyb", "pass", "is truncated"),
    ("pass", "pass", "is not a Covey backup file"),
    ("missing.cvyb", "pass", "cannot read"),
])
def test_verify_refuses_with_the_problem(files, name, passfile, message):
    result = covey("swarm", "backup", "--verify", str(files / name), "--passphrase-file", str(files / passfile))
    assert result.returncode == 1 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_without_a_terminal_the_passphrase_must_come_from_a_file(files):
    result = covey("swarm", "backup", "--verify", str(files / "b.cvyb"))
    assert result.returncode == 1 and "--passphrase-file FILE" in result.stderr


def test_an_empty_passphrase_is_refused(files):
    (files / "empty").write_text("\n")
    with pytest.raises(InvalidArgument, match="passphrase is empty"):
        swarm.read_passphrase(str(files / "empty"), confirm=False)
    assert swarm.read_passphrase(str(files / "pass"), confirm=True) == "s3cret"


def test_a_backup_is_written_0600_and_whole_or_not_at_all(tmp_path):
    path = tmp_path / "out.cvyb"
    umask = os.umask(0o022)  # would give 0644 to a file made with the default mode
    try:
        swarm.write_private(path, iter([b"ab", b"cd"]), 4)
    finally:
        os.umask(umask)
    assert path.read_bytes() == b"abcd" and path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(Unavailable, match="ended after 3 of 4 bytes"):
        swarm.write_private(tmp_path / "short.cvyb", iter([b"abc"]), 4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.cvyb"]


def test_restore_sends_the_file_in_chunks_the_first_with_the_passphrase_and_addresses():
    data = bytes(range(256)) * (2 * swarm.RESTORE_CHUNK // 256 + 3)
    first = swarm.local_pb2.SwarmRestoreRequest(passphrase="p", advertise_addr="10.0.0.5")
    chunks = list(swarm.restore_chunks(first, data))
    assert len(chunks) == 3 and b"".join(c.data for c in chunks) == data
    assert (chunks[0].passphrase, chunks[0].advertise_addr) == ("p", "10.0.0.5")
    assert all(not c.passphrase and not c.advertise_addr for c in chunks[1:])


def test_restore_of_a_file_it_cannot_read_says_so_before_asking_the_daemon(files):
    args = argparse.Namespace(file=str(files / "missing.cvyb"), passphrase_file=str(files / "pass"),
                              advertise_addr="", listen_addr="")
    with pytest.raises(InvalidArgument, match="cannot read .*missing.cvyb"):
        swarm.restore_swarm(None, args)   # no connection: it must not get that far


def test_the_unlock_key_or_a_passphrase_file_not_both(files):
    result = covey("swarm", "backup", "--with-unlock-key", "--passphrase-file", str(files / "pass"))
    assert result.returncode == 2 and "not allowed with argument" in result.stderr

