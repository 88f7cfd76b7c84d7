"""The CLI's deadline and exit codes against a real gRPC server on a unix socket: one that
never answers (a paused manager), and one whose handlers fail with a known outcome."""
import socket as sockets
import threading
import time
from concurrent import futures

import grpc
import pytest

from covey.cli import client, main
from covey.errors import EXIT_FAILED, EXIT_UNKNOWN, MAYBE_APPLIED, OUTCOME_KEY, Outcome
from proto import control_pb2

HOLD = 30.0     # s: how long a "paused" handler holds a call at most (released at teardown)
DEADLINE = 0.5  # s: the CLI's --timeout in these tests
SLACK = 2.0     # s: what the CLI may take beyond its deadline


class Manager:
    """covey.Control's ListNodes and UpdateNode: held unanswered while `paused`, else
    failing with UNAVAILABLE and the outcome in `outcome`."""

    def __init__(self):
        self.paused = True
        self.outcome = Outcome.NOT_APPLIED
        self.release = threading.Event()

    def handle(self, request, context):
        if self.paused:
            self.release.wait(HOLD)
            context.abort(grpc.StatusCode.CANCELLED, "released")
        context.set_trailing_metadata(((OUTCOME_KEY, self.outcome.value),))
        context.abort(grpc.StatusCode.UNAVAILABLE, "the swarm does not have a leader")

    def handler(self) -> grpc.GenericRpcHandler:
        def unary(request_class):
            return grpc.unary_unary_rpc_method_handler(
                self.handle, request_deserializer=request_class.FromString,
                response_serializer=lambda message: message.SerializeToString())
        return grpc.method_handlers_generic_handler("covey.Control", {
            "ListNodes": unary(control_pb2.ListNodesRequest),
            "UpdateNode": unary(control_pb2.UpdateNodeRequest)})


@pytest.fixture
def manager(tmp_path):
    manager = Manager()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((manager.handler(),))
    socket = tmp_path / "covey.sock"
    server.add_insecure_port(f"unix://{socket}")
    server.start()
    manager.host = f"unix://{socket}"
    yield manager
    manager.release.set()
    server.stop(None)


def covey(capsys, *argv) -> tuple[int, str, float]:
    started = time.monotonic()
    code = main.main(list(argv))
    return code, capsys.readouterr().err, time.monotonic() - started


def test_a_read_from_a_paused_manager_fails_at_the_deadline_as_not_applied(manager, capsys):
    code, err, took = covey(capsys, "-H", manager.host, "--timeout", str(DEADLINE), "node", "ls")
    assert code == EXIT_FAILED
    assert f"no answer from {manager.host} within {DEADLINE:g}s" in err
    assert DEADLINE <= took < DEADLINE + SLACK


def test_a_write_to_a_paused_manager_fails_at_the_deadline_as_maybe_applied(manager, capsys):
    code, err, took = covey(capsys, "-H", manager.host, "--timeout", str(DEADLINE),
                            "node", "update", "--label-add", "a=b", "m1")
    assert code == EXIT_UNKNOWN
    assert MAYBE_APPLIED in err
    assert took < DEADLINE + SLACK


def test_the_deadline_comes_from_the_environment_without_the_flag(manager, capsys, monkeypatch):
    monkeypatch.setenv(client.TIMEOUT_ENV, str(DEADLINE))
    code, err, took = covey(capsys, "-H", manager.host, "node", "ls")
    assert code == EXIT_FAILED
    assert f"within {DEADLINE:g}s" in err and took < DEADLINE + SLACK


@pytest.mark.parametrize("value", ["soon", "0", "-3"])
def test_a_bad_deadline_is_refused_by_name(manager, capsys, monkeypatch, value):
    monkeypatch.setenv(client.TIMEOUT_ENV, value)
    code, err, _ = covey(capsys, "-H", manager.host, "node", "ls")
    assert code == EXIT_FAILED
    assert client.TIMEOUT_ENV in err


@pytest.mark.parametrize("outcome, exit_code", [(Outcome.NOT_APPLIED, EXIT_FAILED), (Outcome.UNKNOWN, EXIT_UNKNOWN)])
def test_the_exit_code_follows_the_outcome_the_manager_reports(manager, capsys, outcome, exit_code):
    manager.paused, manager.outcome = False, outcome
    code, err, _ = covey(capsys, "-H", manager.host, "--timeout", "5", "node", "update", "--label-add", "a=b", "m1")
    assert code == exit_code
    assert "the swarm does not have a leader" in err
    assert (MAYBE_APPLIED in err) == (outcome is Outcome.UNKNOWN)


def test_a_socket_that_never_speaks_fails_at_the_deadline_to_connect(tmp_path, capsys):
    path = tmp_path / "mute.sock"
    with sockets.socket(sockets.AF_UNIX) as mute:   # accepts connections, never answers
        mute.bind(str(path))
        mute.listen()
        code, err, took = covey(capsys, "-H", f"unix://{path}", "--timeout", str(DEADLINE), "node", "ls")
    assert code == EXIT_FAILED
    assert "cannot connect" in err and took < DEADLINE + SLACK
