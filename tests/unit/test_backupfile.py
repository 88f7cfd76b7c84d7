"""covey/backupfile.py: a sealed backup opens to what was sealed; every kind of bad file is
refused with its own error that names the problem."""
import struct

import pytest

from covey import backupfile as bf
from covey.errors import InvalidArgument
from proto import backup_pb2
from proto import objects_pb2 as pb

FAST = bf.ScryptParams(log2_n=10)  # the format is the same; only guessing gets cheaper
PASS = "correct horse battery staple"


def _backup() -> backup_pb2.Backup:
    backup = backup_pb2.Backup(format_version=bf.CONTENTS_VERSION, raft_index=42, created_at_ns=7)
    store = backup.store
    store.format_version = 2
    store.clusters.add(id="c" * 25).root_ca.ca_key_pem = b"-----BEGIN PRIVATE KEY-----"
    store.nodes.add(id="n1", role=pb.MANAGER)
    store.services.add(id="s1").spec.name = "web"
    store.tasks.extend([pb.Task(id=f"t{i}", service_id="s1", slot=i) for i in range(3)])
    store.networks.extend([pb.Network(id=f"n{i}") for i in range(2)])
    return backup


@pytest.fixture(scope="module")
def sealed() -> bytes:
    return bf.seal(_backup(), PASS, FAST)


def test_round_trip_and_summary(sealed):
    opened = bf.read(sealed, PASS)
    assert opened == _backup()
    summary = bf.summary_of(opened, len(sealed))
    assert (summary.raft_index, summary.cluster_id, summary.clusters, summary.nodes, summary.services,
            summary.tasks, summary.networks, summary.size) == (42, "c" * 25, 1, 1, 1, 3, 2, len(sealed))


def test_nothing_in_clear(sealed):
    assert b"BEGIN PRIVATE KEY" not in sealed and b"web" not in sealed
    assert bf.seal(_backup(), PASS, FAST) != sealed  # a new salt and nonce every time


@pytest.mark.parametrize("offset", [bf.HEADER_SIZE + 5, -1, len(bf.MAGIC) + 3, bf.HEADER_SIZE - 1])
def test_a_changed_byte_is_corrupt(sealed, offset):
    """In the contents, the tag; in the header, its digest (not taken for a wrong passphrase)."""
    data = bytearray(sealed)
    data[offset] ^= 0x01
    with pytest.raises(bf.Corrupt, match="is corrupt"):
        bf.read(bytes(data), PASS)


@pytest.mark.parametrize("keep", [1, len(bf.MAGIC) + 2, bf.HEADER_SIZE - 1, bf.HEADER_SIZE, -1])
def test_a_truncated_file(sealed, keep):
    with pytest.raises(bf.Truncated, match="is truncated"):
        bf.read(sealed[:keep], PASS)


def test_extra_bytes_are_corrupt(sealed):
    with pytest.raises(bf.Corrupt, match="1 bytes after its contents"):
        bf.read(sealed + b"\0", PASS)


def test_a_newer_file_format(sealed):
    data = bytearray(sealed)
    struct.pack_into(">H", data, len(bf.MAGIC), bf.VERSION + 1)
    with pytest.raises(bf.NewerFormat, match=f"format {bf.VERSION + 1}, newer .* upgrade covey"):
        bf.read(bytes(data), PASS)


def test_newer_contents():
    backup = _backup()
    backup.format_version = bf.CONTENTS_VERSION + 1
    with pytest.raises(bf.NewerFormat, match="contents in format 2, newer"):
        bf.read(bf.seal(backup, PASS, FAST), PASS)


def test_wrong_passphrase(sealed):
    with pytest.raises(bf.WrongPassphrase, match="wrong passphrase"):
        bf.read(sealed, PASS + "!")


@pytest.mark.parametrize("data", [b"", b"\x89PNG\r\n\x1a\n" + b"\0" * 200, b"CVYRSNP1" + b"\0" * 100])
def test_not_a_backup(data):
    with pytest.raises(bf.NotABackup, match="not a Covey backup file"):
        bf.read(data, PASS, "x.bin")


def test_an_empty_passphrase_is_refused(sealed):
    for action in (lambda: bf.seal(_backup(), "", FAST), lambda: bf.read(sealed, "")):
        with pytest.raises(InvalidArgument, match="needs a passphrase"):
            action()


def test_a_header_asking_for_too_much_memory_is_refused(sealed):
    """A crafted file may not make the reader run scrypt with any parameters it likes."""
    fields = bytearray(sealed[:bf.HEADER_SIZE - 8])
    fields[len(bf.MAGIC) + 2] = 30  # log2(N)
    header = bytes(fields) + bf._digest(bytes(fields))
    with pytest.raises(bf.Corrupt, match="N=2\\^30"):
        bf.read(header + sealed[bf.HEADER_SIZE:], PASS)
