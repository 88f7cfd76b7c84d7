"""Issue 12's scenario in the lab: an ex-leader cut off the network and healed never answers a
read staler than the writes acknowledged before it; a paused manager makes `covey` fail at its
deadline. One swarm of 3 managers (real coveyd processes) for the module."""
import json
import time

import grpc
import pytest

from covey.cli import client
from covey.errors import EXIT_FAILED, CoveyError, from_rpc_error
from deploy.lab import Lab
from proto import control_pb2
from tests.e2e.swarmtools import HEARTBEAT, dump_logs, healthy, host_named
from tests.support.poll import wait_until

MANAGERS = ("host1", "host2", "host3")
FRESH_READS = 200    # reads the healed ex-leader must answer (fresh) before the test ends
SCENARIO = 40.0      # s: at most, for the writes and reads after the heal
CLI_DEADLINE = 2.0   # s: --timeout of the calls to a paused manager
CLI_SLACK = 3.0      # s: the CLI's own start and exit beyond its deadline
CALL_DEADLINE = 20.0  # s: the deadline of the scenario's calls (a write waits up to write_timeout, 10 s)


@pytest.fixture(scope="module")
def lab():
    lab = Lab(3).up()
    try:
        lab.form_swarm(HEARTBEAT, managers=3)
        yield lab
    finally:
        lab.down()
        dump_logs(lab)


def leader_of(lab) -> str:
    return next(name for name, s in healthy(lab, "host1", MANAGERS).items() if s == "Leader")


class Client:
    """Control calls through one manager's unix socket, in-process (the CLI's own client, its
    deadlines included): a `covey` process takes ~0.5 s to start, far longer than a follower
    takes to catch up, and would hide a stale read."""

    def __init__(self, lab, via: str):
        self.conn = client.connect(f"unix://{host_named(lab, via).socket}", None, CALL_DEADLINE)

    def label(self, target: str) -> tuple[CoveyError | None, str | None]:
        """(the error, or None and the target node's "seq" label)."""
        try:
            node = self.conn.control.GetNode(control_pb2.GetNodeRequest(node=target)).node
        except grpc.RpcError as exc:
            return from_rpc_error(exc), None
        except CoveyError as exc:
            return exc, None
        return None, node.spec.labels.get("seq")

    def set_label(self, target: str, value: str) -> CoveyError | None:
        try:
            self.conn.control.UpdateNode(control_pb2.UpdateNodeRequest(node=target, labels_add={"seq": value}))
        except grpc.RpcError as exc:
            return from_rpc_error(exc, write=True)
        except CoveyError as exc:
            return exc
        return None

    def close(self) -> None:
        self.conn.channel.close()


class History:
    """Sequential writes of seq=vN through one manager and what became of each."""

    def __init__(self, writer: Client, target_id: str):
        self.writer, self.target_id = writer, target_id
        self.acked: str | None = None     # the last acknowledged value
        # Written with an unknown outcome: each may take effect at any time after it was sent.
        self.unknown: set[str] = set()
        self.refused: set[str] = set()    # certainly not applied
        self.n = 0

    def write(self) -> bool:
        self.n += 1
        value = f"v{self.n}"
        error = self.writer.set_label(self.target_id, value)
        if error is None:
            self.acked = value
        elif error.maybe_applied:
            self.unknown.add(value)
        else:
            self.refused.add(value)
        return error is None

    def allowed(self) -> set:
        return {self.acked, *self.unknown}


@pytest.fixture
def clients(lab):
    made: dict[str, Client] = {}

    def make(via: str) -> Client:
        made[via] = made.get(via) or Client(lab, via)
        return made[via]
    yield make
    for c in made.values():
        c.close()


def test_a_healed_ex_leader_never_answers_a_stale_read(lab, clients):
    old = leader_of(lab)
    survivor = next(m for m in MANAGERS if m != old)
    writer, reader = clients(survivor), clients(old)
    target = json.loads(lab.covey(host_named(lab, survivor), "node", "inspect", survivor).stdout)[0]["id"]
    history = History(writer, target)
    wait_until(history.write, 30, 0.1, "a first write")
    lab.cut(host_named(lab, old))
    try:
        wait_until(history.write, 60, 0.1, "a write acknowledged without the ex-leader")
        error, seen = reader.label(target)
        assert error is not None, f"the cut-off ex-leader answered {seen!r} (acknowledged since: {history.acked!r})"
    finally:
        lab.heal(host_named(lab, old))
    fresh, stale = 0, []
    deadline = time.monotonic() + SCENARIO
    while fresh < FRESH_READS and time.monotonic() < deadline:
        history.write()
        allowed = history.allowed()
        error, seen = reader.label(target)
        if error is None:
            if seen in allowed:
                fresh += 1
            else:
                stale.append((seen, sorted(v for v in allowed if v)))
    assert stale == [], f"the healed ex-leader answered stale values (seen, allowed): {stale[:10]}"
    assert fresh >= FRESH_READS, f"only {fresh} reads answered by the healed ex-leader in {SCENARIO}s"
    _, final = writer.label(target)
    assert final not in history.refused, f"a write refused as not applied was applied: {final}"


def test_a_call_to_a_paused_manager_fails_at_its_deadline(lab):
    follower = next(m for m, s in healthy(lab, "host1", MANAGERS).items() if s == "Reachable")
    host = host_named(lab, follower)
    lab.pause_coveyd(host)
    try:
        started = time.monotonic()
        result = lab.covey(host, "--timeout", str(CLI_DEADLINE), "node", "ls", check=False, timeout=30)
        took = time.monotonic() - started
    finally:
        lab.resume_coveyd(host)
    assert result.returncode == EXIT_FAILED, result.stderr
    assert f"{CLI_DEADLINE:g}s" in result.stderr, result.stderr
    assert CLI_DEADLINE <= took < CLI_DEADLINE + CLI_SLACK
    healthy(lab, follower, MANAGERS)
