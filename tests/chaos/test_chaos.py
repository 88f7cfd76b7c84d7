"""Jepsen-style runs on a 3-manager lab (issue 12): one nemesis at a time faults the
managers while clients run, then the checks of tests/chaos/runner.py (linearizable history
with final reads from every manager, convergence, recovery time per fault, no traceback).
While a manager's disk is full or read-only (its raft dir is ext4 on a loop device of its
own, tests/support/smalldisk.py), it names the failed journal write in its log and in its
node inspect or API error, and the others follow a leader that is not it and show it
Unreachable. A read-only disk is healed the only way ext4 allows: that coveyd stopped,
umount, e2fsck, mount, coveyd started again on the journal the fault left (it must open).

CI runs one short fault per nemesis (about 15 s each). A soak: COVEY_CHAOS_SOAK=SECONDS
repeats faults of each nemesis for that long, with more operations.
"""
import grpc
import pytest

from deploy.lab import Host
from proto import control_pb2
from proto import objects_pb2 as pb
from tests.chaos.nemesis import Chaos, Fault
from tests.chaos.runner import RECOVERY_TIMEOUT, history_stays_linearizable
from tests.chaos.workload import control
from tests.support.poll import wait_until

# Faults under which a manager runs but cannot write its journal, and the error it must name.
DISK_ERRORS = {"disk-full": "No space left on device", "disk-read-only": "Read-only file system"}

NEMESES = {
    "kill-leader": lambda c, leader, follower: c.kill(leader),
    "kill-follower": lambda c, leader, follower: c.kill(follower),
    "pause-leader": lambda c, leader, follower: c.pause(leader),
    "pause-follower": lambda c, leader, follower: c.pause(follower),
    "isolate-leader": lambda c, leader, follower: c.isolate(leader),
    "isolate-follower": lambda c, leader, follower: c.isolate(follower),
    "one-way-into-leader": lambda c, leader, follower: c.one_way(leader),
    "packet-loss": lambda c, leader, follower: c.packet_loss(c.managers),
    "disk-full-leader": lambda c, leader, follower: c.disk_full(leader),
    "disk-full-follower": lambda c, leader, follower: c.disk_full(follower),
    "disk-full-kill-leader": lambda c, leader, follower: c.disk_full_then_kill(leader),
    "disk-read-only-leader": lambda c, leader, follower: c.read_only(leader),
    "disk-read-only-follower": lambda c, leader, follower: c.read_only(follower),
    "crash-point-follower": lambda c, leader, follower: c.crash_point(follower),
}


def during_fault(chaos: Chaos, fault: Fault, logs: dict[str, int]) -> None:
    """What must hold while a manager cannot write its journal (its disk full or read-only):
    it says why, in its log and in its ManagerStatus (node ls / node inspect on it) or the
    error its API answers, and the other managers follow a leader that is not it and show
    it Unreachable (it answers no Raft message)."""
    reason = DISK_ERRORS.get(fault.nemesis)
    if reason is None:                 # (disk-full-kill: its coveyd is not there to ask)
        return
    host = next(h for h in chaos.managers if h.name == fault.hosts[0])
    wait_until(lambda: f"cannot write ({reason}" in host.log_file.read_text()[logs[host.name]:], RECOVERY_TIMEOUT,
               0.2, f"{host.name} to log that it cannot write its journal ({reason})")
    message = says_why(host)
    assert "raft journal" in message.lower() and reason in message, message
    leaders: dict[str, str | None] = {}

    def led_by_another():
        leaders.update({h.name: leader_seen_from(h) for h in chaos.others(host)})
        return all(leader not in (None, host.name) for leader in leaders.values())
    try:
        wait_until(led_by_another, RECOVERY_TIMEOUT, 0.2, f"the others to follow a leader other than {host.name}")
    except TimeoutError as exc:
        raise AssertionError(f"{exc}; leaders seen: {leaders}") from None
    others = [control(str(h.socket)) for h in chaos.others(host)]

    def others_show_it_unreachable():
        statuses = [other.GetNode(control_pb2.GetNodeRequest(node=host.name), timeout=5).node.manager_status
                    for other in others]
        return all(s.reachability == pb.ManagerStatus.UNREACHABLE for s in statuses)
    wait_until(others_show_it_unreachable, RECOVERY_TIMEOUT, 0.2, f"the other managers to show {host.name} Unreachable")


def says_why(host: Host) -> str:
    """Why `host` cannot write, as its node inspect or its API's refusal says it."""
    stub = control(str(host.socket))
    seen = []

    def why():
        try:
            node = stub.GetNode(control_pb2.GetNodeRequest(node=host.name), timeout=5).node
        except grpc.RpcError as error:     # a manager that cannot apply answers no read: it says why
            seen.append(f"{error.code().name}: {error.details()}")
            return error.details() if "Raft journal" in (error.details() or "") else None
        status = node.manager_status
        seen.append(f"{pb.ManagerStatus.Reachability.Name(status.reachability)} {status.message!r}")
        return status.message if status.reachability == pb.ManagerStatus.UNREACHABLE else None
    try:
        return wait_until(why, RECOVERY_TIMEOUT, 0.2, f"{host.name} to say why in node inspect")
    except TimeoutError as exc:
        raise AssertionError(f"{exc}; it answered: {sorted(set(seen))}") from None


def leader_seen_from(host: Host) -> str | None:
    """The hostname of the leader in `host`'s node ls (None: it answers nothing now)."""
    try:
        nodes = control(str(host.socket)).ListNodes(control_pb2.ListNodesRequest(), timeout=5).nodes
    except grpc.RpcError:
        return None
    return next((n.description.hostname for n in nodes if n.manager_status.leader), None)



@pytest.mark.parametrize("nemesis", list(NEMESES))
def test_history_stays_linearizable(chaos, nemesis):
    history_stays_linearizable(chaos, nemesis, NEMESES[nemesis], f"t{list(NEMESES).index(nemesis)}", during_fault)
