"""Autolock: a manager's keys at rest sealed with a key derived from the swarm's unlock key.

A sealed key file is MAGIC | nonce (12) | AES-GCM(key), the file's name as associated data
(a sealed raft.key cannot be passed off as node.key). The key-encryption key is HKDF of the
unlock key, so the unlock key itself is never written on the node. A wrong unlock key fails
AES-GCM's authentication: nothing is read, nothing changes.
"""
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from covey import pki
from covey.errors import FailedPrecondition, InvalidArgument

MAGIC = b"CVYSEAL1"
_NONCE = 12
LOCKED = "this node is locked: run covey swarm unlock"
WRONG_KEY = (f"{pki.INVALID_UNLOCK_KEY}: it does not open this node's keys "
             "(was it rotated? covey swarm unlock-key on an unlocked manager shows the current one)")


def kek(unlock_key: bytes) -> AESGCM:
    return AESGCM(HKDF(hashes.SHA256(), 32, salt=None, info=b"covey autolock kek v1").derive(unlock_key))


def is_sealed(data: bytes) -> bool:
    return data.startswith(MAGIC)


def seal(unlock_key: bytes, name: str, plain: bytes) -> bytes:
    nonce = os.urandom(_NONCE)
    return MAGIC + nonce + kek(unlock_key).encrypt(nonce, plain, name.encode())


def unseal(unlock_key: bytes | None, name: str, data: bytes) -> bytes:
    """The plain key: `data` itself when it is not sealed. FailedPrecondition(LOCKED) without
    an unlock key, InvalidArgument(WRONG_KEY) with one that does not open it."""
    if not is_sealed(data):
        return data
    if unlock_key is None:
        raise FailedPrecondition(LOCKED)
    body = data[len(MAGIC):]
    try:
        return kek(unlock_key).decrypt(body[:_NONCE], body[_NONCE:], name.encode())
    except InvalidTag:
        raise InvalidArgument(WRONG_KEY) from None
