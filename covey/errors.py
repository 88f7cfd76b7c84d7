"""One exception hierarchy for the whole project.

Each class maps to one gRPC status code, so that a manager raising it gives the
CLI the same message and a non-zero exit. Each error also says what became of the
change the call asked for (its `outcome`): certainly not applied (the default: it
failed before it was proposed to Raft, or was refused), or perhaps applied (proposed,
but its commit was not seen). The outcome travels in the trailing metadata, and the
CLI exits with EXIT_FAILED or EXIT_UNKNOWN accordingly (README, "Exit codes").
"""
import enum

import grpc

NOT_APPLIED = "not applied: safe to retry"
MAYBE_APPLIED = "may have been applied: check before retrying"

EXIT_FAILED = 1    # the command failed; nothing it asked for was applied
EXIT_UNKNOWN = 3   # the command's change may have been applied (2 is argparse's usage error)


class Outcome(enum.Enum):
    NOT_APPLIED = "not-applied"
    UNKNOWN = "unknown"


OUTCOME_KEY = "covey-outcome"   # trailing metadata: an Outcome's value
# Codes a call can end with in transport (not from a handler): a write may have reached the manager.
_AMBIGUOUS_CODES = frozenset({grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE,
                              grpc.StatusCode.CANCELLED, grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL})


class CoveyError(Exception):
    code = grpc.StatusCode.UNKNOWN
    outcome = Outcome.NOT_APPLIED

    def __init__(self, *args, outcome: Outcome | None = None):
        super().__init__(*args)
        if outcome is not None:
            self.outcome = outcome

    @property
    def maybe_applied(self) -> bool:
        return self.outcome is Outcome.UNKNOWN

    @property
    def exit_code(self) -> int:
        return EXIT_UNKNOWN if self.maybe_applied else EXIT_FAILED

    def explained(self) -> str:
        """The message, saying the change may have been applied when that is so."""
        text = str(self)
        if self.maybe_applied and MAYBE_APPLIED not in text:
            text += f" (the change {MAYBE_APPLIED})"
        return text

    def metadata(self) -> tuple:
        """Trailing metadata that goes with the status (the outcome; where the leader is)."""
        return ((OUTCOME_KEY, self.outcome.value),)


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
    outcome = Outcome.UNKNOWN    # what took too long may still complete


class NotLeader(Unavailable):
    """A leader-only call reached a follower; the caller should go to `leader_addr`."""
    METADATA_KEY = "covey-leader"

    def __init__(self, leader_addr: str | None):
        super().__init__("this manager is not the leader" +
                         (f"; the leader is {leader_addr}" if leader_addr else ", and none is known"))
        self.leader_addr = leader_addr

    def metadata(self) -> tuple:
        leader = ((self.METADATA_KEY, self.leader_addr),) if self.leader_addr else ()
        return super().metadata() + leader


NO_LEADER = "the swarm does not have a leader"
NOT_A_MANAGER = "this node is not a swarm manager"
NOT_IN_SWARM = ("this node is not part of a swarm; use \"covey swarm init\" or "
                "\"covey swarm join\" to connect this node to a swarm")

_BY_CODE = {cls.code: cls for cls in CoveyError.__subclasses__()}


def from_rpc_error(err: grpc.RpcError, write: bool = False) -> CoveyError:
    """The CoveyError a failed call stands for (for the CLI and peer calls). A handler's error
    says its outcome; one that ended in transport (a deadline, a lost connection) is, for a
    `write`, of unknown outcome when its code leaves open whether the manager got it."""
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    details = err.details() if hasattr(err, "details") else str(err)
    if code == grpc.StatusCode.UNAVAILABLE and not details:
        details = "cannot reach the daemon"
    outcome = outcome_of(err)
    if outcome is None:
        outcome = Outcome.UNKNOWN if write and code in _AMBIGUOUS_CODES else Outcome.NOT_APPLIED
    return _BY_CODE.get(code, CoveyError)(details or str(code), outcome=outcome)


def outcome_of(err: grpc.RpcError) -> Outcome | None:
    """The outcome a Covey handler attached to its error; None if no handler answered."""
    trailing = err.trailing_metadata() if hasattr(err, "trailing_metadata") else None
    for key, value in trailing or ():
        if key == OUTCOME_KEY:
            try:
                return Outcome(value)
            except ValueError:
                return None
    return None
