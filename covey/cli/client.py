"""How the CLI reaches a daemon: the local unix socket, or a manager over mTLS."""
import os
from dataclasses import dataclass
from pathlib import Path

import grpc

from covey import tls
from covey.errors import InvalidArgument, Unavailable
from proto import control_pb2_grpc, local_pb2_grpc

DEFAULT_HOST = "unix:///run/covey/covey.sock"
DEFAULT_CERT_DIR = "/var/lib/covey/certificates"


@dataclass
class Connection:
    target: str
    channel: grpc.Channel
    local: bool

    @property
    def control(self) -> control_pb2_grpc.ControlStub:
        return control_pb2_grpc.ControlStub(self.channel)

    @property
    def containers(self) -> local_pb2_grpc.LocalContainersStub:
        self._require_local("this command shows the node's own containers")
        return local_pb2_grpc.LocalContainersStub(self.channel)

    @property
    def volumes(self) -> local_pb2_grpc.LocalVolumesStub:
        self._require_local("volumes belong to a node")
        return local_pb2_grpc.LocalVolumesStub(self.channel)

    @property
    def networks(self) -> local_pb2_grpc.LocalNetworksStub:
        self._require_local("a node's own part of a network is seen on that node")
        return local_pb2_grpc.LocalNetworksStub(self.channel)

    @property
    def node(self) -> local_pb2_grpc.LocalNodeStub:
        self._require_local("this command acts on the node itself")
        return local_pb2_grpc.LocalNodeStub(self.channel)

    def aio_channel(self) -> grpc.aio.Channel:
        """A grpc.aio channel to the same local socket (for streams both ways)."""
        self._require_local("this command acts on the node's own containers")
        return grpc.aio.insecure_channel(self.target)

    def _require_local(self, why: str) -> None:
        if not self.local:
            raise InvalidArgument(f"{why}: run it on that node (through its unix socket), not with -H tcp://")


def connect(host: str | None, cert_dir: str | None) -> Connection:
    target = host or os.environ.get("COVEY_HOST") or DEFAULT_HOST
    if target.startswith("unix://"):
        path = target[len("unix://"):]
        return Connection(target, grpc.insecure_channel(f"unix://{path}"), local=True)
    if target.startswith("tcp://"):
        return Connection(target, _tcp_channel(target[len("tcp://"):], cert_dir), local=False)
    raise InvalidArgument(f"invalid host {target!r}: use unix:///path/to/covey.sock or tcp://HOST:PORT")


def _tcp_channel(addr: str, cert_dir: str | None) -> grpc.Channel:
    directory = Path(cert_dir or os.environ.get("COVEY_CERT_DIR") or DEFAULT_CERT_DIR)
    try:
        ca, key, cert = ((directory / name).read_bytes() for name in ("ca.crt", "node.key", "node.crt"))
    except OSError as exc:
        raise Unavailable(f"cannot read the TLS certificates in {directory} ({exc.strerror}): "
                          "point --cert-dir or COVEY_CERT_DIR at a node's certificates directory") from None
    creds = tls.channel_credentials(ca, key, cert)
    return grpc.secure_channel(addr, creds, options=tls.CHANNEL_OPTIONS)
