#!/usr/bin/env python3
"""Failover time: the leader's coveyd killed (SIGKILL) to the first successful write
through a surviving manager, in a lab swarm of 3 managers. Median of several runs.

    sudo python3 tests/bench/bench_failover.py [--runs 5]

Prints the figures and writes a JSON result (its path is printed). The baseline beside
it, measured in the same run, is the latency of one write with all managers up, and the
election timeouts in force (Raft cannot fail over faster than one of those).
"""
import argparse
import json
import signal
import statistics
import sys
import time
from pathlib import Path

import benchpaths  # noqa: F401  (first: puts the project on sys.path)

from deploy.lab import Lab  # noqa: E402
from manager.state.store import RaftTimings  # noqa: E402
from tests.support.poll import wait_until  # noqa: E402


def leader_of(lab, via):
    nodes = json.loads(lab.covey(via, "node", "ls", "--format", "json").stdout)
    return next(n["description"]["hostname"] for n in nodes if n.get("manager_status", {}).get("leader"))


def write(lab, via, n) -> bool:
    return lab.covey(via, "node", "update", "--label-add", f"bench={n}", "host1", check=False).returncode == 0


def one_run(lab, i) -> tuple[float, float]:
    hosts = {h.name: h for h in lab.hosts}
    via = hosts["host1"]
    wait_until(lambda: write(lab, via, f"warm{i}"), 60, 0.2, "a healthy swarm")
    leader = hosts[leader_of(lab, via)]
    survivor = next(h for h in lab.hosts if h is not leader)
    t = time.monotonic()
    assert write(lab, survivor, f"base{i}")
    baseline = time.monotonic() - t
    lab.stop_coveyd(leader, signal.SIGKILL)
    killed = time.monotonic()
    wait_until(lambda: write(lab, survivor, f"after{i}"), 60, 0.02, "a write after the failover")
    failover = time.monotonic() - killed
    lab.start_coveyd(leader)
    return failover, baseline


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", default="/tmp/covey-bench/failover.json")
    args = parser.parse_args()
    lab = Lab(3).up()
    try:
        lab.form_swarm("1s", managers=3)
        results = [one_run(lab, i) for i in range(args.runs)]
    finally:
        lab.down()
    failovers = [f for f, _ in results]
    baselines = [b for _, b in results]
    timings = RaftTimings()
    summary = {
        "runs": args.runs,
        "failover_s": failovers,
        "failover_median_s": statistics.median(failovers),
        "write_with_all_up_median_s": statistics.median(baselines),
        "election_timeout_s": [timings.election_min, timings.election_max],
        "ratio_failover_to_one_write": statistics.median(failovers) / statistics.median(baselines),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2))
    print(f"failover (leader killed -> first acknowledged write), median of {args.runs}: "
          f"{summary['failover_median_s']:.2f} s  (runs: {', '.join(f'{f:.2f}' for f in failovers)})")
    print(f"one write with every manager up (CLI round trip), median: {summary['write_with_all_up_median_s']:.2f} s")
    print(f"ratio: {summary['ratio_failover_to_one_write']:.1f}x; election timeout "
          f"{timings.election_min}-{timings.election_max} s")
    print(f"result: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
