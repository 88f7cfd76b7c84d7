"""One Jepsen-style run, shared by the chaos suite's test modules (test_chaos.py on 3
managers, test_partitions.py on 5): clients read, write node labels and compare-and-set
service labels through the API while a nemesis faults the managers, then every fault is
healed and the history is checked:

- linearizable per key (tests/chaos/linearizability.py), the final reads from every
  manager included, so an acknowledged write that is lost is a violation;
- every manager converges to the same nodes and services, and their committed Raft logs
  (read from the journal files) hold the same entry at every index two of them hold;
- the tasks on the workers no fault touches keep running, none added (tests/chaos/tasks.py);
- the swarm is healthy again within RECOVERY_TIMEOUT of each heal (its time is reported);
- no traceback in any coveyd log.

CI runs one short fault per nemesis (about 15 s each). A soak: COVEY_CHAOS_SOAK=SECONDS
repeats faults of each nemesis for that long, with more operations.
"""
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from deploy.lab import Host
from proto import control_pb2
from tests.chaos import raftlogs
from tests.chaos.conftest import CLIENTS, SOAK
from tests.chaos.linearizability import Op, check
from tests.chaos.nemesis import Chaos, Fault
from tests.chaos.tasks import TaskWatch
from tests.chaos.workload import Client, control
from tests.e2e.swarmtools import healthy
from tests.support.poll import wait_until

# Every read through the API waits for a leader-confirmed read index
# (manager/state/raft/readindex.py), so reads made while faults run must be linearizable too.
READS_MUST_BE_LINEARIZABLE = True
QUIET = 1.5                  # s of workload before a fault and after recovery
FAULT_HOLD = 4.0             # s a fault lasts (longer than an election, 0.4-1.4 s)
RECOVERY_TIMEOUT = 60.0      # s from a heal to a healthy swarm
CONVERGE_TIMEOUT = 30.0      # s for every manager to hold the same state
CI_OPS = 400                 # operations per client at most in CI (few hundred per key: tractable)
SOAK_OPS = 1_000_000
FINAL_READER = -1            # the process of the final reads in the history

Nemesis = Callable[[Chaos, Host, Host], Fault]        # (chaos, leader, a follower) -> the fault started
DuringFault = Callable[[Chaos, Fault, dict[str, int]], None]   # checks while it lasts (log offsets)


def hold(seconds: float) -> None:
    """The schedule's pauses: a fault lasting, a quiet stretch (not synchronization)."""
    time.sleep(seconds)


def roles(chaos: Chaos) -> tuple[Host, Host]:
    """(leader, a follower) once the swarm is healthy."""
    statuses = healthy(chaos.lab, chaos.managers[0].name, tuple(h.name for h in chaos.managers), RECOVERY_TIMEOUT)
    leader = next(h for h in chaos.managers if statuses[h.name] == "Leader")
    return leader, next(h for h in chaos.managers if h is not leader)


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


def no_check(chaos: Chaos, fault: Fault, logs: dict[str, int]) -> None:
    """A nemesis with nothing to check while it lasts."""


def run_nemesis(chaos: Chaos, name: str, nemesis: Nemesis, tag: str, during: DuringFault = no_check) -> Run:
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
            fault = chaos.started(nemesis(chaos, leader, follower), time.monotonic())
            hold(FAULT_HOLD)
            during(chaos, fault, logs)
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
    """The log line above each traceback logged since `offsets`, on every host."""
    found = []
    for host in [*chaos.managers, *chaos.workers]:
        lines = host.log_file.read_text()[offsets[host.name]:].splitlines()
        found += [f"{host.name}: {lines[i - 1] if i else line}" for i, line in enumerate(lines)
                  if line.startswith("Traceback")]
    return found


def history_stays_linearizable(chaos: Chaos, name: str, nemesis: Nemesis, tag: str,
                               during: DuringFault = no_check) -> None:
    """A run of `nemesis`, its figures printed, then every check of the module docstring."""
    offsets = {h.name: len(h.log_file.read_text()) for h in [*chaos.managers, *chaos.workers]}
    watch = TaskWatch(chaos.workers, chaos.tasks)
    watch.start()
    try:
        run = run_nemesis(chaos, name, nemesis, tag, during)
        final_reads(chaos, run)
    finally:
        watch.stop()
    compared, disagreements = raftlogs.compare([raftlogs.committed_log(h) for h in chaos.managers])
    # Writes and compare-and-sets, and the final reads from every manager: nothing
    # acknowledged is lost, nothing applied that failed, every manager the same.
    updates = check(op for op in run.history if op.kind != "read" or op.process == FINAL_READER)
    everything = check(run.history)
    bad, stale = [v for v in updates if not v.ok], [v for v in everything if not v.ok]
    print(run.figures(len(bad)) + f"; keys with a stale read: {len(stale)} of {len(everything)}")
    for fault in run.faults:
        print(f"  fault {fault.nemesis} on {fault.hosts}: {fault.detail}; recovered {fault.recovered:.1f} s")
    print(f"  {compared} committed Raft entries compared between managers; "
          f"{watch.looks} looks at the workers' {len(chaos.tasks)} tasks")
    assert sum(c.stats.ok for c in run.clients) > 0, "no operation succeeded: the workload did not run"
    assert not disagreements, f"committed Raft logs differ: {disagreements[:5]}"
    assert compared > 0, "no committed index held by two managers: nothing compared"
    assert watch.looks > 0 and not watch.deviations, \
        f"tasks on the untouched workers changed: {watch.deviations[:3]}"
    assert not bad, f"not linearizable: {describe(bad)}"
    found = tracebacks(chaos, offsets)
    assert not found, f"tracebacks in coveyd logs: {found[:3]}"
    if READS_MUST_BE_LINEARIZABLE:
        assert not stale, f"stale reads: {describe(stale)}"


def describe(verdicts: list) -> str:
    return "; ".join(f"{v.key} ({v.operations} ops), the longest linearizable prefix ends "
                     f"{v.longest_prefix[-3:]}" for v in verdicts)
