"""Jepsen-style runs on a 3-manager lab (issue 12): clients read, write node labels and
compare-and-set service labels through the API while one nemesis at a time faults the
managers; then every fault is healed and the history is checked:

- linearizable per key (tests/chaos/linearizability.py), the final reads from every
  manager included, so an acknowledged write that is lost is a violation;
- every manager converges to the same nodes and services;
- the swarm is healthy again within RECOVERY_TIMEOUT of each heal (its time is reported);
- no traceback in any coveyd log;
- while a manager's disk is full or read-only (its raft dir is ext4 on a loop device of its
  own, tests/support/smalldisk.py), it names the failed journal write in its log and in its
  node inspect or API error, and the others follow a leader that is not it. A read-only disk
  is healed the only way ext4 allows: that coveyd stopped, umount, e2fsck, mount, coveyd
  started again on the journal the fault left (it must open).

CI runs one short fault per nemesis (about 15 s each). A soak: COVEY_CHAOS_SOAK=SECONDS
repeats faults of each nemesis for that long, with more operations.
"""
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass

import grpc
import pytest

from deploy.lab import Host
from proto import control_pb2
from proto import objects_pb2 as pb
from tests.chaos.conftest import CLIENTS
from tests.chaos.linearizability import Op, check
from tests.chaos.nemesis import Chaos, Fault
from tests.chaos.workload import Client, control
from tests.e2e.swarmtools import healthy
from tests.support.poll import wait_until

# Every read through the API waits for a leader-confirmed read index
# (manager/state/raft/readindex.py), so reads made while faults run must be linearizable too.
READS_MUST_BE_LINEARIZABLE = True
SOAK = float(os.environ.get("COVEY_CHAOS_SOAK", "0"))   # s per nemesis; 0: CI's short schedule
QUIET = 1.5                  # s of workload before a fault and after recovery
FAULT_HOLD = 4.0             # s a fault lasts (longer than an election, 0.4-1.4 s)
RECOVERY_TIMEOUT = 60.0      # s from a heal to a healthy swarm
CONVERGE_TIMEOUT = 30.0      # s for every manager to hold the same state
CI_OPS = 400                 # operations per client at most in CI (few hundred per key: tractable)
SOAK_OPS = 1_000_000
FINAL_READER = -1            # the process of the final reads in the history
# Faults under which a manager runs but cannot write its journal, and the error it must name.
DISK_ERRORS = {"disk-full": "No space left on device", "disk-read-only": "Read-only file system"}


def hold(seconds: float) -> None:
    """The schedule's pauses: a fault lasting, a quiet stretch (not synchronization)."""
    time.sleep(seconds)


def roles(chaos: Chaos) -> tuple[Host, Host]:
    """(leader, a follower) once the swarm is healthy."""
    statuses = healthy(chaos.lab, chaos.managers[0].name, tuple(h.name for h in chaos.managers), RECOVERY_TIMEOUT)
    leader = next(h for h in chaos.managers if statuses[h.name] == "Leader")
    return leader, next(h for h in chaos.managers if h is not leader)


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


@dataclass
class Run:
    nemesis: str
    history: list
    faults: list
    clients: list

    def figures(self, violations: int) -> str:
        ok, fail, info = (sum(getattr(c.stats, k) for c in self.clients) for k in ("ok", "fail", "info"))
        total = ok + fail + info
        recoveries = ", ".join(f"{f.recovered:.1f}" for f in self.faults)
        errors = sum((c.stats.errors for c in self.clients), Counter()).most_common(4)
        return (f"chaos {self.nemesis}: {total} operations (ok {ok}, fail {fail}, unknown {info}: "
                f"{info / max(total, 1):.1%}), {len(self.faults)} faults, {violations} violations, "
                f"recovery s: {recoveries}; most frequent errors: {errors}")


def run_nemesis(chaos: Chaos, name: str, tag: str) -> Run:
    lab = chaos.lab
    history: list[Op] = []
    lock, stop = threading.Lock(), threading.Event()
    readers = tuple(str(h.socket) for h in chaos.managers)
    clients = [Client(process=p, socket=str(chaos.managers[p % len(chaos.managers)].socket),
                      node=chaos.managers[p % len(chaos.managers)].name, service=f"chaos-s{p}",
                      history=history, lock=lock, stop=stop, max_ops=SOAK_OPS if SOAK else CI_OPS,
                      read_sockets=readers, tag=tag, seed=p) for p in range(CLIENTS)]
    faults: list[Fault] = []
    ends = time.monotonic() + SOAK
    for client in clients:
        client.start()
    try:
        while True:
            hold(QUIET)
            leader, follower = roles(chaos)
            logs = {h.name: len(h.log_file.read_text()) for h in chaos.managers}
            fault = chaos.started(NEMESES[name](chaos, leader, follower), time.monotonic())
            hold(FAULT_HOLD)
            during_fault(chaos, fault, logs)
            chaos.heal(fault, time.monotonic())
            healthy(lab, chaos.managers[0].name, tuple(h.name for h in chaos.managers), RECOVERY_TIMEOUT)
            fault.recovered = time.monotonic() - fault.healed
            faults.append(fault)
            if time.monotonic() >= ends:
                break
        hold(QUIET)
    finally:
        stop.set()
        for client in clients:
            client.join(30)
    return Run(name, history, faults, clients)


def during_fault(chaos: Chaos, fault: Fault, logs: dict[str, int]) -> None:
    """What must hold while a manager cannot write its journal (its disk full or read-only):
    it says why, in its log and in its ManagerStatus (node ls / node inspect on it) or the
    error its API answers, and the other managers follow a leader that is not it."""
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


def final_reads(chaos: Chaos, run: Run) -> None:
    """Once every manager holds the same state, read every key from every manager: these
    reads come after everything, so a lost acknowledged write makes the history fail."""
    last: dict[str, object] = {}

    def snapshot(host: Host):
        stub = control(str(host.socket))
        try:
            nodes = stub.ListNodes(control_pb2.ListNodesRequest(), timeout=5).nodes
            services = stub.ListServices(control_pb2.ListServicesRequest(), timeout=5).services
        except grpc.RpcError as error:
            last[host.name] = f"{error.code().name}: {error.details()}"
            return None
        last[host.name] = view = (
            {n.description.hostname or n.id: (n.meta.version, dict(n.spec.labels)) for n in nodes},
            {s.spec.name: (s.meta.version, dict(s.spec.labels)) for s in services})
        return view

    def converged():
        views = [snapshot(h) for h in chaos.managers]
        return views[0] if None not in views and all(v == views[0] for v in views) else None
    try:
        wait_until(converged, CONVERGE_TIMEOUT, 0.3, "every manager to hold the same nodes and services")
    except TimeoutError as exc:
        raise AssertionError(f"{exc}; last seen: {last}") from None
    keys = {key: where for client in run.clients for key, where in client.keys.items()}
    for host in chaos.managers:
        tables = dict(zip(("node", "service"), snapshot(host), strict=True))  # type: ignore[arg-type]
        now = time.monotonic()
        for key, (table, name) in keys.items():
            run.history.append(Op(key, "read", tables[table][name][1].get(key), now, now, "ok", FINAL_READER))


def tracebacks(chaos: Chaos, offsets: dict[str, int]) -> list[str]:
    found = []
    for host in chaos.managers:
        text = host.log_file.read_text()[offsets[host.name]:]
        found += [f"{host.name}: {line}" for line in text.splitlines() if line.startswith("Traceback")]
    return found


@pytest.mark.parametrize("nemesis", list(NEMESES))
def test_history_stays_linearizable(chaos, nemesis):
    offsets = {h.name: len(h.log_file.read_text()) for h in chaos.managers}
    tag = f"t{list(NEMESES).index(nemesis)}"
    run = run_nemesis(chaos, nemesis, tag)
    final_reads(chaos, run)
    # Writes and compare-and-sets, and the final reads from every manager: nothing
    # acknowledged is lost, nothing applied that failed, every manager the same.
    updates = check(op for op in run.history if op.kind != "read" or op.process == FINAL_READER)
    everything = check(run.history)
    bad, stale = [v for v in updates if not v.ok], [v for v in everything if not v.ok]
    print(run.figures(len(bad)) + f"; keys with a stale read: {len(stale)} of {len(everything)}")
    for fault in run.faults:
        print(f"  fault {fault.nemesis} on {fault.hosts}: {fault.detail}; recovered {fault.recovered:.1f} s")
    assert sum(c.stats.ok for c in run.clients) > 0, "no operation succeeded: the workload did not run"
    assert not bad, f"not linearizable: {describe(bad)}"
    assert not tracebacks(chaos, offsets)
    if READS_MUST_BE_LINEARIZABLE:
        assert not stale, f"stale reads: {describe(stale)}"


def describe(verdicts: list) -> str:
    return "; ".join(f"{v.key} ({v.operations} ops), the longest linearizable prefix ends "
                     f"{v.longest_prefix[-3:]}" for v in verdicts)
