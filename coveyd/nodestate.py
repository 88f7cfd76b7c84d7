"""What a node keeps on disk about its membership: certificates and swarm.json.

Layout under the data dir (docs/design.md, "Processes and ports"):
    certificates/ca.crt node.key node.crt raft.key
    swarm.json    cluster and node IDs, addresses, known managers
    raft/         the manager's Raft journal and snapshots

With autolock, a manager's key files (KEY_FILES) are sealed by the unlock key
(coveyd/autolock.py); the plain keys live only in this process's memory.
"""
import json
import os
import secrets
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from covey import pki
from coveyd import autolock
from proto import objects_pb2 as pb


@dataclass
class Membership:
    cluster_id: str
    node_id: str
    role: pb.NodeRole
    listen_addr: str = ""       # manager gRPC listener, host:port
    advertise_addr: str = ""    # manager gRPC address given to others, host:port
    raft_addr: str = ""         # host:port of this manager's Raft peer port
    managers: list[str] = field(default_factory=list)
    raft_peers: list[str] = field(default_factory=list)  # the other managers' Raft addresses


NODE_KEY, RAFT_KEY, AT_REST_KEY = "node.key", "raft.key", "raft-at-rest.key"
KEY_FILES = (NODE_KEY, RAFT_KEY, AT_REST_KEY)


class NodeState:
    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self.cert_dir = data_dir / "certificates"
        self.raft_dir = data_dir / "raft"
        self.swarm_file = data_dir / "swarm.json"
        self.unlock_key: bytes | None = None  # autolock: what the key files are sealed with
        self._keys: dict[str, bytes] = {}     # plain keys read or written, by file name

    # ------------------------------------------------------------ keys at rest

    def _read_key(self, name: str) -> bytes:
        if name not in self._keys:
            self._keys[name] = autolock.unseal(self.unlock_key, name, (self.cert_dir / name).read_bytes())
        return self._keys[name]

    def _write_key(self, name: str, plain: bytes) -> None:
        self._keys[name] = plain
        data = autolock.seal(self.unlock_key, name, plain) if self.unlock_key else plain
        _write_private(self.cert_dir / name, data)

    def _key_names(self) -> list[str]:
        return [name for name in KEY_FILES if (self.cert_dir / name).exists()]

    def locked(self) -> bool:
        """The key files are sealed and this process was not given the unlock key."""
        return self.unlock_key is None and any(
            autolock.is_sealed((self.cert_dir / name).read_bytes()) for name in self._key_names())

    def unlock(self, unlock_key: bytes) -> None:
        """Open the sealed keys; InvalidArgument (and nothing changed) for a wrong key."""
        plain = {name: autolock.unseal(unlock_key, name, (self.cert_dir / name).read_bytes())
                 for name in self._key_names()}
        self.unlock_key = unlock_key
        self._keys.update(plain)

    def reseal(self, unlock_key: bytes | None) -> None:
        """Seal the key files with another unlock key, or (None) write them plain."""
        plain = {name: self._read_key(name) for name in self._key_names()}
        self.unlock_key = unlock_key
        for name, key in plain.items():
            self._write_key(name, key)

    def load(self) -> Membership | None:
        if not self.swarm_file.exists():
            return None
        return Membership(**json.loads(self.swarm_file.read_text()))

    def save(self, membership: Membership) -> None:
        _write_private(self.swarm_file, json.dumps(asdict(membership), indent=2).encode())

    def save_certs(self, ca_cert: bytes, key: bytes, cert: bytes) -> None:
        self.cert_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        _write_private(self.cert_dir / "ca.crt", ca_cert)
        self._write_key(NODE_KEY, key)
        _write_private(self.cert_dir / "node.crt", cert)

    def save_ca_cert(self, ca_cert: bytes) -> None:
        """The CAs to trust (two during a root CA rotation)."""
        _write_private(self.cert_dir / "ca.crt", ca_cert)

    def save_raft_key(self, key: bytes) -> None:
        self._write_key(RAFT_KEY, key)

    def raft_key(self) -> bytes:
        return self._read_key(RAFT_KEY)

    def at_rest_key(self) -> bytes:
        """This manager's own key for its Raft files, kept with its TLS key; made on first use."""
        if not (self.cert_dir / AT_REST_KEY).exists():
            self._write_key(AT_REST_KEY, secrets.token_bytes(32))
        return self._read_key(AT_REST_KEY)

    def ca_cert(self) -> bytes:
        return (self.cert_dir / "ca.crt").read_bytes()

    def key(self) -> bytes:
        return self._read_key(NODE_KEY)

    def cert(self) -> bytes:
        return (self.cert_dir / "node.crt").read_bytes()

    def identity(self) -> pki.Identity:
        return pki.cert_identity(self.cert())

    def erase(self) -> None:
        """Forget the swarm: what `swarm leave` removes."""
        self.swarm_file.unlink(missing_ok=True)
        self.unlock_key = None
        self._keys.clear()
        for path in (self.cert_dir, self.raft_dir):
            shutil.rmtree(path, ignore_errors=True)


def _write_private(path: Path, data: bytes) -> None:
    """Write atomically with mode 0600: a crash never leaves half a key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
