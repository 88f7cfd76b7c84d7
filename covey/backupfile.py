"""The backup file (`covey swarm backup`): the one module that writes and reads it. The
manager seals (the state never leaves it unencrypted); the CLI opens, to verify, with no swarm.

    HEADER  magic "CVYBACKP" | version u16 | scrypt log2(N) u8, r u8, p u8 | salt (16)
            | nonce (12) | passphrase check (16) | ciphertext length u64 | header digest (8)
    BODY    AES-256-GCM(Backup, proto/backup.proto), the whole header as associated data

Big endian. scrypt (hashlib's, OpenSSL) of the passphrase and salt gives the AES key and the
passphrase check, so that a wrong passphrase is told apart from damaged contents; the header
digest (SHA-256) tells a damaged header apart from a wrong passphrase before scrypt runs.
"""
import hashlib
import hmac
import os
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.protobuf.message import DecodeError

from covey.errors import InvalidArgument
from proto import backup_pb2

MAGIC = b"CVYBACKP"
VERSION = 1              # of the file layout above
CONTENTS_VERSION = 1     # of the Backup message inside
_FIELDS = struct.Struct(">8sHBBB16s12s16sQ")
_DIGEST = 8
HEADER_SIZE = _FIELDS.size + _DIGEST
_KEY, _CHECK = 32, 16
# A file may not make its reader spend more on scrypt than this (128 * r * N bytes, p rounds).
MAX_KDF_MEMORY, MAX_KDF_P = 1 << 30, 16


@dataclass(frozen=True)
class ScryptParams:
    log2_n: int = 17     # 128 MiB and ~0.3 s per derivation on one core: slow to guess offline
    r: int = 8
    p: int = 1


DEFAULT_KDF = ScryptParams()


class BackupFileError(InvalidArgument):
    """A backup file that cannot be read; each subclass names why."""


class NotABackup(BackupFileError):
    pass


class Truncated(BackupFileError):
    pass


class Corrupt(BackupFileError):
    pass


class NewerFormat(BackupFileError):
    pass


class WrongPassphrase(BackupFileError):
    pass


def seal(backup: backup_pb2.Backup, passphrase: str, kdf: ScryptParams = DEFAULT_KDF) -> bytes:
    """The backup file's bytes."""
    _require(passphrase)
    salt, nonce = os.urandom(16), os.urandom(12)
    key, check = _derive(passphrase, salt, kdf)
    plaintext = backup.SerializeToString(deterministic=True)
    fields = _FIELDS.pack(MAGIC, VERSION, kdf.log2_n, kdf.r, kdf.p, salt, nonce, check,
                          len(plaintext) + 16)  # + the GCM tag
    header = fields + _digest(fields)
    return header + AESGCM(key).encrypt(nonce, plaintext, header)


def read(data: bytes, passphrase: str, where: str = "the file") -> backup_pb2.Backup:
    """The Backup in a file's bytes; a BackupFileError that names the problem otherwise."""
    _require(passphrase)
    header, body = _split(data, where)
    _, _, log2_n, r, p, salt, nonce, check, _ = _FIELDS.unpack(header[:_FIELDS.size])
    key, expected = _derive(passphrase, salt, ScryptParams(log2_n, r, p))
    if not hmac.compare_digest(check, expected):
        raise WrongPassphrase(f"{where}: wrong passphrase (it does not open this backup)")
    try:
        plaintext = AESGCM(key).decrypt(nonce, body, header)
    except InvalidTag:
        raise Corrupt(f"{where} is corrupt: its contents were changed after it was written "
                      "(authentication failed)") from None
    return _contents(plaintext, where)


def summary_of(backup: backup_pb2.Backup, size: int) -> backup_pb2.BackupSummary:
    store = backup.store
    return backup_pb2.BackupSummary(
        raft_index=backup.raft_index, cluster_id=store.clusters[0].id if store.clusters else "",
        created_at_ns=backup.created_at_ns, clusters=len(store.clusters), nodes=len(store.nodes),
        services=len(store.services), tasks=len(store.tasks), networks=len(store.networks), size=size)


def _require(passphrase: str) -> None:
    if not passphrase:
        raise InvalidArgument("a backup needs a passphrase: its key is derived from it")


def _derive(passphrase: str, salt: bytes, kdf: ScryptParams) -> tuple[bytes, bytes]:
    # hashlib's scrypt (OpenSSL) releases the GIL; cryptography's holds it for the whole
    # 0.3 s, which would stall the manager's event loop and its Raft thread.
    n = 1 << kdf.log2_n
    out = hashlib.scrypt(passphrase.encode(), salt=salt, n=n, r=kdf.r, p=kdf.p,
                         maxmem=128 * kdf.r * (n + 2 + kdf.p), dklen=_KEY + _CHECK)
    return out[:_KEY], out[_KEY:]


def _digest(fields: bytes) -> bytes:
    return hashlib.sha256(fields).digest()[:_DIGEST]


def _split(data: bytes, where: str) -> tuple[bytes, bytes]:
    """(header, body) once the header is whole, undamaged, of a known version and sane."""
    if not data or not data.startswith(MAGIC[:len(data)]):
        raise NotABackup(f"{where} is not a Covey backup file" + ("" if data else " (it is empty)"))
    if len(data) >= len(MAGIC) + 2:
        (version,) = struct.unpack_from(">H", data, len(MAGIC))
        if version > VERSION:
            raise NewerFormat(f"{where} is a backup in format {version}, newer than this covey reads "
                              f"(format {VERSION}): upgrade covey")
    if len(data) < HEADER_SIZE:
        raise Truncated(f"{where} is truncated: {len(data)} bytes, shorter than a backup's header")
    header, body = data[:HEADER_SIZE], data[HEADER_SIZE:]
    if not hmac.compare_digest(_digest(header[:_FIELDS.size]), header[_FIELDS.size:]):
        raise Corrupt(f"{where} is corrupt: its header was changed after it was written")
    _, version, log2_n, r, p, *_, length = _FIELDS.unpack(header[:_FIELDS.size])
    if version != VERSION or not _sane(log2_n, r, p):
        raise Corrupt(f"{where} is corrupt: its header names format {version}, scrypt N=2^{log2_n} r={r} p={p}")
    if len(body) < length:
        raise Truncated(f"{where} is truncated: {len(body)} of its {length} bytes of contents")
    if len(body) > length:
        raise Corrupt(f"{where} is corrupt: {len(body) - length} bytes after its contents")
    return header, body


def _sane(log2_n: int, r: int, p: int) -> bool:
    return 1 <= log2_n and 1 <= r and 1 <= p <= MAX_KDF_P and (128 * r) << log2_n <= MAX_KDF_MEMORY


def _contents(plaintext: bytes, where: str) -> backup_pb2.Backup:
    try:
        backup = backup_pb2.Backup.FromString(plaintext)
    except DecodeError:
        raise Corrupt(f"{where} is corrupt: its decrypted contents are not a backup") from None
    if backup.format_version > CONTENTS_VERSION:
        raise NewerFormat(f"{where} holds backup contents in format {backup.format_version}, newer than "
                          f"this covey reads (format {CONTENTS_VERSION}): upgrade covey")
    if len(backup.store.clusters) != 1:
        raise Corrupt(f"{where} is corrupt: it holds {len(backup.store.clusters)} cluster objects, not 1")
    return backup
