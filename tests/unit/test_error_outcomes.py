"""Whether a failed change may have been applied: how errors are classified, carried over
gRPC and turned into exit codes."""
import grpc
import pytest
from pysyncobj.config import FAIL_REASON

from covey.errors import (
    EXIT_FAILED,
    EXIT_UNKNOWN,
    MAYBE_APPLIED,
    NOT_APPLIED,
    OUTCOME_KEY,
    DeadlineExceeded,
    InvalidArgument,
    NotLeader,
    Outcome,
    Unavailable,
    from_rpc_error,
)
from manager.state.store import raft_failure


class Failed(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str, trailing=()):
        self._code, self._details, self._trailing = code, details, tuple(trailing)

    def code(self):
        return self._code

    def details(self):
        return self._details

    def trailing_metadata(self):
        return self._trailing


@pytest.mark.parametrize("reason", [FAIL_REASON.NOT_LEADER, FAIL_REASON.MISSING_LEADER, FAIL_REASON.REQUEST_DENIED,
                                    FAIL_REASON.QUEUE_FULL, FAIL_REASON.DISCARDED])
def test_a_command_never_appended_or_replaced_in_the_log_was_not_applied(reason):
    error = raft_failure(reason)
    assert error.outcome is Outcome.NOT_APPLIED and error.exit_code == EXIT_FAILED
    assert NOT_APPLIED in str(error)


@pytest.mark.parametrize("reason", [FAIL_REASON.LEADER_CHANGED, FAIL_REASON.UNKNOWN_OUTCOME])
def test_a_command_proposed_before_the_leader_changed_may_have_been_applied(reason):
    error = raft_failure(reason)
    assert error.outcome is Outcome.UNKNOWN and error.exit_code == EXIT_UNKNOWN
    assert MAYBE_APPLIED in str(error)


def test_errors_are_not_applied_unless_they_say_otherwise():
    assert InvalidArgument("bad").outcome is Outcome.NOT_APPLIED
    assert DeadlineExceeded("slow").outcome is Outcome.UNKNOWN
    assert Unavailable("gone", outcome=Outcome.UNKNOWN).maybe_applied


def test_the_outcome_travels_in_the_trailing_metadata():
    sent = Unavailable("lost", outcome=Outcome.UNKNOWN)
    received = from_rpc_error(Failed(sent.code, str(sent), sent.metadata()))
    assert type(received) is Unavailable and received.outcome is Outcome.UNKNOWN
    assert dict(NotLeader("10.0.0.1:4242").metadata()) == {OUTCOME_KEY: "not-applied",
                                                            NotLeader.METADATA_KEY: "10.0.0.1:4242"}


def test_a_handlers_outcome_wins_over_the_code():
    failed = Failed(grpc.StatusCode.UNAVAILABLE, "no leader", ((OUTCOME_KEY, "not-applied"),))
    assert from_rpc_error(failed, write=True).outcome is Outcome.NOT_APPLIED


@pytest.mark.parametrize("code, write, outcome", [
    (grpc.StatusCode.DEADLINE_EXCEEDED, True, Outcome.UNKNOWN),
    (grpc.StatusCode.UNAVAILABLE, True, Outcome.UNKNOWN),
    (grpc.StatusCode.DEADLINE_EXCEEDED, False, Outcome.NOT_APPLIED),
    (grpc.StatusCode.UNIMPLEMENTED, True, Outcome.NOT_APPLIED),
])
def test_a_call_that_ended_in_transport_is_unknown_only_for_a_write_that_may_have_arrived(code, write, outcome):
    assert from_rpc_error(Failed(code, "ended"), write=write).outcome is outcome


def test_the_message_says_maybe_applied_once():
    assert DeadlineExceeded("slow").explained() == f"slow (the change {MAYBE_APPLIED})"
    said = DeadlineExceeded(f"slow; it {MAYBE_APPLIED}")
    assert said.explained() == str(said)
    assert InvalidArgument("bad").explained() == "bad"
