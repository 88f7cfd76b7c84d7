"""Jepsen-style runs on a 3-manager lab (issue 12): one nemesis at a time faults the
managers while clients run, then the checks of tests/chaos/runner.py (linearizable history
with final reads from every manager, convergence, recovery time per fault, no traceback).

CI runs one short fault per nemesis (about 15 s each). A soak: COVEY_CHAOS_SOAK=SECONDS
repeats faults of each nemesis for that long, with more operations.
"""
import grpc
import pytest

from proto import control_pb2
from proto import objects_pb2 as pb
from tests.chaos.nemesis import Chaos, Fault
from tests.chaos.runner import RECOVERY_TIMEOUT, history_stays_linearizable
from tests.chaos.workload import control
from tests.support.poll import wait_until

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
    "crash-point-follower": lambda c, leader, follower: c.crash_point(follower),
}


def during_fault(chaos: Chaos, fault: Fault, logs: dict[str, int]) -> None:
    """What must hold while a disk is full: the manager says why, in its log
    and in its ManagerStatus (node ls / node inspect on it), and the other managers
    show it Unreachable (it answers no Raft message)."""
    if fault.nemesis != "disk-full":   # (disk-full-kill: its coveyd is not there to ask)
        return
    host = next(h for h in chaos.managers if h.name == fault.hosts[0])
    wait_until(lambda: "cannot write" in host.log_file.read_text()[logs[host.name]:], RECOVERY_TIMEOUT, 0.2,
               f"{host.name} to log that it cannot write its journal")
    stub = control(str(host.socket))
    seen = []

    def says_why():
        try:
            node = stub.GetNode(control_pb2.GetNodeRequest(node=host.name), timeout=5).node
        except grpc.RpcError as error:     # a manager that cannot apply answers no read: it says why
            seen.append(f"{error.code().name}: {error.details()}")
            return error.details() if "Raft journal" in (error.details() or "") else None
        status = node.manager_status
        seen.append(f"{pb.ManagerStatus.Reachability.Name(status.reachability)} {status.message!r}")
        return status.message if status.reachability == pb.ManagerStatus.UNREACHABLE else None
    try:
        message = wait_until(says_why, RECOVERY_TIMEOUT, 0.2, f"{host.name} to say why in node inspect")
    except TimeoutError as exc:
        raise AssertionError(f"{exc}; it answered: {sorted(set(seen))}") from None
    assert "raft journal" in message.lower()
    others = [control(str(h.socket)) for h in chaos.managers if h is not host]

    def others_show_it_unreachable():
        statuses = [other.GetNode(control_pb2.GetNodeRequest(node=host.name), timeout=5).node.manager_status
                    for other in others]
        return all(s.reachability == pb.ManagerStatus.UNREACHABLE for s in statuses)
    wait_until(others_show_it_unreachable, RECOVERY_TIMEOUT, 0.2, f"the other managers to show {host.name} Unreachable")


@pytest.mark.parametrize("nemesis", list(NEMESES))
def test_history_stays_linearizable(chaos, nemesis):
    history_stays_linearizable(chaos, nemesis, NEMESES[nemesis], f"t{list(NEMESES).index(nemesis)}", during_fault)
