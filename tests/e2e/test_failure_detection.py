"""Failure detection with the product's DEFAULT settings (no --dispatcher-heartbeat, no --set):
fast by default and never wrong. The leader is cut off, paused or killed; a worker's network
blips; a worker leaves. A node that is gone has its task running elsewhere; a node that is
healthy is never shown Down and keeps its tasks; no slot ever runs twice.

One swarm for the module: host1-host3 managers (and workers), host4 a worker; host1 also runs
the test registry. Each scenario first waits for a healthy swarm (one leader, every node
Ready), runs a service of 4 replicas (one per node) of its own, undoes its fault in a fixture
(also when it fails) and removes its service. The last one (swarm leave) ends with host4 out.

Correctness is asserted, with generous bounds; the times are printed (pytest -s) and written
to /tmp/covey-bench/failure_detection.json: the goals are the bench's to show.
"""
import contextlib
import json
import signal
import time
from pathlib import Path

import pytest

from proto import objects_pb2 as pb
from tests.e2e.sampler import POLL, Sampler, View
from tests.e2e.swarmtools import (
    REGISTRY,
    answering_table,
    dump_logs,
    healthy,
    host_named,
    runc_running,
    swarm_with_registry,
)
from tests.support.poll import holds_for, wait_until

IMAGE = f"{REGISTRY}/covey/httpd:v1"
MANAGERS = ("host1", "host2", "host3")
WORKER = "host4"
REPLICAS = 4                 # one per node: every node holds a slot
SLOTS = range(1, REPLICAS + 1)
CREATE_TIMEOUT = 180.0       # s: the service created, every task running (image pulls)
FIRST_VIEW_TIMEOUT = 10.0    # s: the sampler's first answer
LEADER_TIMEOUT = 15.0        # s: fault -> a new leader (the goal is ~election time)
REPLACED_TIMEOUT = 15.0      # s: fault -> the lost slot RUNNING elsewhere (the goal is 5 s)
SETTLE_TIMEOUT = 60.0        # s: fault undone -> the stale task shut down
GONE_TIMEOUT = 60.0          # s: a removed service's containers gone
BLIP = 2.0                   # s a worker's eth0 stays down
AFTER_BLIP = 5.0             # s watched after the blip
LEFT_DOWN_TIMEOUT = 3.0      # s: `swarm leave` returned -> the node shown Down
CLI_POLL = 0.3               # s between two polls that run covey or runc
BENCH_OUT = Path("/tmp/covey-bench/failure_detection.json")


@pytest.fixture(scope="module")
def lab():
    with swarm_with_registry(4, managers=len(MANAGERS), heartbeat=None) as lab:
        try:
            yield lab
        finally:
            dump_logs(lab)


@pytest.fixture(scope="module")
def figures():
    """Scenario -> measured seconds; printed and written for the bench at the end."""
    out: dict = {}
    yield out
    BENCH_OUT.parent.mkdir(parents=True, exist_ok=True)
    BENCH_OUT.write_text(json.dumps(out, indent=2))
    print(f"\nfailure detection with default settings (goal: tasks running elsewhere <= 5 s): {out}\n"
          f"written to {BENCH_OUT}")


@pytest.fixture
def service(lab, request):
    """A healthy swarm running a service of its own, one task per node; removed afterwards."""
    statuses = healthy(lab, MANAGERS[0], MANAGERS)
    via = host_named(lab, next(m for m in MANAGERS if statuses[m] == "Leader"))
    name = request.node.name.removeprefix("test_")[:20].rstrip("_").replace("_", "-")
    lab.covey(via, "service", "create", "--name", name, "--replicas", str(REPLICAS), IMAGE,
              timeout=CREATE_TIMEOUT)
    yield name
    via = wait_until(lambda: next((m for m in MANAGERS if answering_table(lab, m)), None), SETTLE_TIMEOUT,
                     CLI_POLL, "a manager that answers")  # the faulted one may still be catching up
    lab.covey(host_named(lab, via), "service", "rm", name)
    wait_until(lambda: not any(runc_running(h) for h in lab.hosts),
               GONE_TIMEOUT, CLI_POLL, f"the containers of {name} gone")


@pytest.fixture
def undo(service):
    """Undo callbacks for faults, run at the latest when the test ends (before its service goes)."""
    with contextlib.ExitStack() as stack:
        yield stack


def running_tasks(host) -> set[str]:
    """IDs of the tasks whose container runs on `host`, as runc sees them (a container's ID is
    the task's ID behind the executor's prefix)."""
    return {cid.rsplit("-", 1)[-1] for cid in runc_running(host)}


def current_leader(lab) -> str:
    return next(m for m, s in healthy(lab, MANAGERS[0], MANAGERS).items() if s == "Leader")


def first_view(sampler: Sampler) -> View:
    view = wait_until(sampler.latest, FIRST_VIEW_TIMEOUT, POLL, "the sampler's first view")
    assert not view.down() and all(len(view.on(h)) == 1 for h in view.nodes), "one task per node"
    return view


def never_wrong(views: list[View], kept: dict[str, set[str]], faulted: str) -> list[str]:
    """What no view may show: a healthy node Down, a healthy node's task no longer running
    there as wanted, a slot running twice."""
    problems = []
    for v in views:
        problems += [f"{h} shown Down" for h in v.down() if h in kept]
        problems += [f"{h} lost {sorted(ids - v.on(h))}" for h, ids in kept.items() if not ids <= v.on(h)]
        problems += v.doubled(stale_on=faulted)
    return list(dict.fromkeys(problems))  # each once, in order


def assert_never_wrong(views: list[View], kept: dict[str, set[str]], faulted: str) -> None:
    problems = never_wrong(views, kept, faulted)
    assert not problems, f"{len(problems)} things went wrong: " + "; ".join(problems[:10])


def stays_right(sampler: Sampler, start: float, kept: dict[str, set[str]], seconds: float, what: str) -> None:
    """Watch for `seconds` that no view since `start` shows anything wrong (a blip: no fault)."""
    try:
        holds_for(lambda: not never_wrong(sampler.since(start), kept, faulted=""), seconds, POLL, what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {'; '.join(never_wrong(sampler.since(start), kept, '')[:10])}") from None


def settled(sampler: Sampler, host, stale: set[str]) -> bool:
    """After the fault: one RUNNING task per slot, the stale ones shut down, their containers gone."""
    view = sampler.latest()
    per_slot = [sum(1 for t in view.running() if t.slot == s) for s in SLOTS]
    stale_stopped = all(t.status.state > pb.RUNNING for t in view.tasks if t.id in stale)
    return per_slot == [1] * REPLICAS and stale_stopped and not running_tasks(host) & stale


def lose_the_leader(lab, service, undo, figures, scenario, fault, repair) -> None:
    """The leader's host faulted: a new leader, its slot running elsewhere, healthy nodes
    untouched; once repaired, its stale task shut down and no slot running twice."""
    target = host_named(lab, current_leader(lab))
    via = host_named(lab, next(m for m in MANAGERS if m != target.name))
    with Sampler(via.socket, service) as sampler:
        before = first_view(sampler)
        kept = {h: before.on(h) for h in before.nodes if h != target.name}
        stale = before.on(target.name)
        start = time.monotonic()
        fault(target)
        undo.callback(repair, target)
        got = figures[scenario] = {"leader": target.name}  # filled as it goes: a failure shows how far
        elected = wait_until(lambda: sampler.first_since(start, lambda v: v.leader() not in (None, target.name)),
                             LEADER_TIMEOUT, POLL, f"a new leader after {target.name}'s {scenario}")
        got["new_leader_s"] = round(elected.at - start, 2)
        replaced = wait_until(lambda: sampler.first_since(start, lambda v: v.serving(SLOTS, off=target.name)),
                              REPLACED_TIMEOUT, POLL, f"{target.name}'s slot running elsewhere")
        got["all_running_s"] = round(replaced.at - start, 2)
        undo.close()
        repaired = time.monotonic()
        wait_until(lambda: settled(sampler, target, stale), SETTLE_TIMEOUT, CLI_POLL,
                   f"{target.name}'s stale task shut down")
        got.update(stale_stopped_after_repair_s=round(time.monotonic() - repaired, 2),
                   unanswered_samples=sampler.misses)
        print(f"\n{scenario}: {got}")
        assert_never_wrong(sampler.since(start), kept, target.name)


def test_leader_partitioned(lab, service, undo, figures):
    lose_the_leader(lab, service, undo, figures, "partition", lab.cut, lab.heal)


def test_leader_paused(lab, service, undo, figures):
    lose_the_leader(lab, service, undo, figures, "pause", lab.pause_coveyd, lab.resume_coveyd)


def test_leader_killed(lab, service, undo, figures):
    lose_the_leader(lab, service, undo, figures, "kill",
                    lambda host: lab.stop_coveyd(host, signal.SIGKILL), lab.start_coveyd)


def test_worker_blip_moves_nothing(lab, service, undo, figures):
    worker = host_named(lab, WORKER)
    with Sampler(host_named(lab, MANAGERS[0]).socket, service) as sampler:
        before = first_view(sampler)
        kept = {h: before.on(h) for h in before.nodes}
        start = time.monotonic()
        lab.cut(worker)
        undo.callback(lab.heal, worker)
        stays_right(sampler, start, kept, BLIP, f"every node up, every task in place while {WORKER} is cut off")
        undo.close()
        stays_right(sampler, start, kept, AFTER_BLIP, f"every node up, every task in place after {WORKER} is back")
        views = sampler.since(start)
        figures["blip"] = {"samples": len(views), "unanswered_samples": sampler.misses}
        assert views and views[-1].at - start >= BLIP + AFTER_BLIP - 1.0, "too few samples"


def test_worker_leaves_down_at_once_and_replaced(lab, service, figures):
    worker, via = host_named(lab, WORKER), host_named(lab, MANAGERS[0])
    with Sampler(via.socket, service) as sampler:
        before = first_view(sampler)
        kept = {h: before.on(h) for h in before.nodes if h != WORKER}
        start = time.monotonic()
        assert lab.covey(worker, "swarm", "leave").stdout.strip() == "Node left the swarm."
        left = time.monotonic()
        got = figures["leave"] = {"leave_cli_s": round(left - start, 2)}
        down = wait_until(lambda: sampler.first_since(start, lambda v: WORKER in v.down()),
                          LEFT_DOWN_TIMEOUT, POLL, f"{WORKER} shown Down after it left")
        status = json.loads(lab.covey(via, "node", "inspect", WORKER).stdout)[0]["status"]
        assert status.get("message") == "left the swarm", status
        replaced = wait_until(lambda: sampler.first_since(start, lambda v: v.serving(SLOTS, off=WORKER)),
                              REPLACED_TIMEOUT, POLL, f"{WORKER}'s slot running elsewhere")
        got.update(down_s=round(down.at - start, 2), all_running_s=round(replaced.at - start, 2))
        print(f"\nleave: {got}")
        assert_never_wrong(sampler.since(start), kept, WORKER)
        assert not runc_running(worker), "a node that left runs no task of the swarm"
