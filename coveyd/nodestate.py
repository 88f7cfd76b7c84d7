"""What a node keeps on disk about its membership: certificates and swarm.json.

Layout under the data dir (docs/design.md, "Processes and ports"):
    certificates/ca.crt node.key node.crt raft.key
    swarm.json    cluster and node IDs, addresses, known managers
    raft/         the manager's Raft journal and snapshots
"""
import json
import os
import secrets
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from covey import pki
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


class NodeState:
    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self.cert_dir = data_dir / "certificates"
        self.raft_dir = data_dir / "raft"
        self.swarm_file = data_dir / "swarm.json"

    def load(self) -> Membership | None:
        if not self.swarm_file.exists():
            return None
        return Membership(**json.loads(self.swarm_file.read_text()))

    def save(self, membership: Membership) -> None:
        _write_private(self.swarm_file, json.dumps(asdict(membership), indent=2).encode())

    def save_certs(self, ca_cert: bytes, key: bytes, cert: bytes) -> None:
        self.cert_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        _write_private(self.cert_dir / "ca.crt", ca_cert)
        _write_private(self.cert_dir / "node.key", key)
        _write_private(self.cert_dir / "node.crt", cert)

    def save_raft_key(self, key: bytes) -> None:
        _write_private(self.cert_dir / "raft.key", key)

    def raft_key(self) -> bytes:
        return (self.cert_dir / "raft.key").read_bytes()

    def at_rest_key(self) -> bytes:
        """This manager's own key for its Raft files, kept with its TLS key; made on first use."""
        path = self.cert_dir / "raft-at-rest.key"
        if not path.exists():
            _write_private(path, secrets.token_bytes(32))
        return path.read_bytes()

    def ca_cert(self) -> bytes:
        return (self.cert_dir / "ca.crt").read_bytes()

    def key(self) -> bytes:
        return (self.cert_dir / "node.key").read_bytes()

    def cert(self) -> bytes:
        return (self.cert_dir / "node.crt").read_bytes()

    def identity(self) -> pki.Identity:
        return pki.cert_identity(self.cert())

    def erase(self) -> None:
        """Forget the swarm: what `swarm leave` removes."""
        self.swarm_file.unlink(missing_ok=True)
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
