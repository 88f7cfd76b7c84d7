"""One exception hierarchy for the whole project.

Each class maps to one gRPC status code, so that a manager raising it gives the
CLI the same message and a non-zero exit.
"""
import grpc


class CoveyError(Exception):
    code = grpc.StatusCode.UNKNOWN

    def metadata(self) -> tuple:
        """Trailing metadata that goes with the status (e.g. where the leader is)."""
        return ()


class InvalidArgument(CoveyError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(CoveyError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(CoveyError):
    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(CoveyError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class PermissionDenied(CoveyError):
    code = grpc.StatusCode.PERMISSION_DENIED


class Unauthenticated(CoveyError):
    code = grpc.StatusCode.UNAUTHENTICATED


class Unavailable(CoveyError):
    code = grpc.StatusCode.UNAVAILABLE


class Conflict(CoveyError):
    """An update named a version that is no longer current."""
    code = grpc.StatusCode.ABORTED


class DeadlineExceeded(CoveyError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class NotLeader(Unavailable):
    """A leader-only call reached a follower; the caller should go to `leader_addr`."""
    METADATA_KEY = "covey-leader"

    def __init__(self, leader_addr: str | None):
        super().__init__("this manager is not the leader" +
                         (f"; the leader is {leader_addr}" if leader_addr else ", and none is known"))
        self.leader_addr = leader_addr

    def metadata(self) -> tuple:
        return ((self.METADATA_KEY, self.leader_addr),) if self.leader_addr else ()


NO_LEADER = "the swarm does not have a leader"
NOT_A_MANAGER = "this node is not a swarm manager"
NOT_IN_SWARM = ("this node is not part of a swarm; use \"covey swarm init\" or "
                "\"covey swarm join\" to connect this node to a swarm")

_BY_CODE = {cls.code: cls for cls in CoveyError.__subclasses__()}


def from_rpc_error(err: grpc.RpcError) -> CoveyError:
    """The CoveyError a failed call stands for (for the CLI and peer calls)."""
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    details = err.details() if hasattr(err, "details") else str(err)
    if code == grpc.StatusCode.UNAVAILABLE and not details:
        details = "cannot reach the daemon"
    return _BY_CODE.get(code, CoveyError)(details or str(code))
