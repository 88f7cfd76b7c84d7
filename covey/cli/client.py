"""How the CLI reaches a daemon: the local unix socket, or a manager over mTLS.

Every unary call has a deadline (--timeout, else $COVEY_TIMEOUT, else DEFAULT_TIMEOUT);
server streams (`service logs -f`, backups) have none in total but must connect within it.
A call that ends in transport (its deadline, a lost connection) becomes a CoveyError that
says whether the change it asked for may have been applied (covey/errors.py).
"""
import os
import re
from dataclasses import dataclass
from pathlib import Path

import grpc

from covey import tls
from covey.errors import CoveyError, InvalidArgument, Unavailable, from_rpc_error, outcome_of
from proto import control_pb2_grpc, local_pb2_grpc

DEFAULT_HOST = "unix:///run/covey/covey.sock"
DEFAULT_CERT_DIR = "/var/lib/covey/certificates"
DEFAULT_TIMEOUT = 60.0   # s: swarm join may take the daemon's join_timeout (20 s) and more
TIMEOUT_ENV = "COVEY_TIMEOUT"
# Methods that change nothing: their failure never leaves a change of unknown outcome.
_READ_METHOD = re.compile(r"/(Get\w*|List\w*|Inspect|Info|Logs|ServiceLogs|Backup)$")


def call_timeout(flag: float | None) -> float:
    """The deadline of each call: the flag, else $COVEY_TIMEOUT, else DEFAULT_TIMEOUT."""
    if flag is not None:
        value, source = flag, "--timeout"
    else:
        text = os.environ.get(TIMEOUT_ENV)
        if not text:
            return DEFAULT_TIMEOUT
        try:
            value, source = float(text), TIMEOUT_ENV
        except ValueError:
            raise InvalidArgument(f"invalid {TIMEOUT_ENV} {text!r}: a number of seconds") from None
    if not value > 0:
        raise InvalidArgument(f"invalid {source} {value:g}: a number of seconds above 0")
    return value


class Deadlines(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Gives each call the CLI's deadline, and turns a call that failed in transport into a
    CoveyError naming the deadline and whether the change may have been applied."""

    def __init__(self, target: str, timeout: float):
        self.target, self.timeout = target, timeout

    def intercept_unary_unary(self, continuation, details, request):
        call = continuation(_with_timeout(details, self.timeout), request)
        error = call.exception()
        if isinstance(error, grpc.RpcError) and outcome_of(error) is None:
            raise self._transport_error(details.method, error) from None
        return call

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(details, request)   # a stream runs as long as it has to

    def _transport_error(self, method: str, error: grpc.RpcError) -> CoveyError:
        write = not _READ_METHOD.search(method)
        exc = from_rpc_error(error, write=write)
        if error.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
            return type(exc)(f"no answer from {self.target} within {self.timeout:g}s (set with --timeout "
                             f"or ${TIMEOUT_ENV}): is the manager paused or cut off?", outcome=exc.outcome)
        return exc


def _with_timeout(details: grpc.ClientCallDetails, timeout: float) -> grpc.ClientCallDetails:
    if details.timeout is not None:
        return details
    return _CallDetails(details.method, timeout, details.metadata, details.credentials,
                        getattr(details, "wait_for_ready", None), getattr(details, "compression", None))


class _CallDetails(grpc.ClientCallDetails):
    def __init__(self, method, timeout, metadata, credentials, wait_for_ready, compression):
        self.method, self.timeout, self.metadata = method, timeout, metadata
        self.credentials, self.wait_for_ready, self.compression = credentials, wait_for_ready, compression


@dataclass
class Connection:
    target: str
    channel: grpc.Channel        # with the deadlines
    local: bool
    raw: grpc.Channel | None = None   # the channel underneath (for channel_ready_future)

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


def connect(host: str | None, cert_dir: str | None, timeout: float = DEFAULT_TIMEOUT) -> Connection:
    """A connection whose unary calls each have `timeout` seconds (see Deadlines)."""
    target = host or os.environ.get("COVEY_HOST") or DEFAULT_HOST
    if target.startswith("unix://"):
        path = target[len("unix://"):]
        channel, local = grpc.insecure_channel(f"unix://{path}"), True
    elif target.startswith("tcp://"):
        channel, local = _tcp_channel(target[len("tcp://"):], cert_dir), False
    else:
        raise InvalidArgument(f"invalid host {target!r}: use unix:///path/to/covey.sock or tcp://HOST:PORT")
    return Connection(target, grpc.intercept_channel(channel, Deadlines(target, timeout)), local, channel)


def _tcp_channel(addr: str, cert_dir: str | None) -> grpc.Channel:
    directory = Path(cert_dir or os.environ.get("COVEY_CERT_DIR") or DEFAULT_CERT_DIR)
    try:
        ca, key, cert = ((directory / name).read_bytes() for name in ("ca.crt", "node.key", "node.crt"))
    except OSError as exc:
        raise Unavailable(f"cannot read the TLS certificates in {directory} ({exc.strerror}): "
                          "point --cert-dir or COVEY_CERT_DIR at a node's certificates directory") from None
    creds = tls.channel_credentials(ca, key, cert)
    return grpc.secure_channel(addr, creds, options=tls.CHANNEL_OPTIONS)
