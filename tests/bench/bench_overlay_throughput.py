"""TCP throughput container to container across two hosts over the overlay (VXLAN), to the
server task's own address and through its service VIP, as ratios to host to host on the
underlay between the same two lab hosts. A real 3-host lab swarm (real coveyd, runc, overlay),
iperf3 in a test image; one stream, --seconds per run, the runs taken in turn for --rounds
rounds (median). Everything is removed at the end. Goal: overlay/underlay >= 0.90.

    python3 tests/bench/bench_overlay_throughput.py [--seconds 5] [--rounds 5] [--out PATH]
"""
from __future__ import annotations

import argparse
import json
import statistics

import benchpaths  # noqa: F401  (first: puts the project on sys.path)
from swarmbench import IPERF, IPERF_PORT, bench_images, write_result  # noqa: E402

from tests.e2e.swarmtools import swarm_with_registry  # noqa: E402
from tests.e2e.test_overlay import converge, covey, exec_in, task_ips  # noqa: E402

RUN_SLACK = 30.0       # s: beyond --seconds, one iperf3 run must have ended
SERVER_HOST, CLIENT_HOST = "host2", "host3"


def gbits(iperf_json: str) -> float:
    """What the receiver got, in Gbit/s, from `iperf3 -J`."""
    return json.loads(iperf_json)["end"]["sum_received"]["bits_per_second"] / 1e9


def iperf_args(addr: str, seconds: float) -> list[str]:
    return ["iperf3", "-c", addr, "-p", str(IPERF_PORT), "-t", str(seconds), "-J"]


def bench(seconds: float, rounds: int) -> dict:
    with swarm_with_registry(3, extra_images=bench_images) as lab:
        server_host, client_host = lab.hosts[1], lab.hosts[2]
        covey(lab, "network", "create", "-d", "overlay", "benchnet")
        covey(lab, "service", "create", "--name", "iperf", "--network", "benchnet",
              "--constraint", f"node.hostname=={SERVER_HOST}", "-d", IPERF)
        covey(lab, "service", "create", "--name", "client", "--network", "benchnet",
              "--constraint", f"node.hostname=={CLIENT_HOST}", "-d", IPERF, "sleep", "86400")
        server_ip = task_ips(converge(lab, "iperf", 1)[0])[0]
        client = converge(lab, "client", 1)[0]
        lab.start_helper("iperf-underlay", server_host, ["iperf3", "-s", "--forceflush", "-p", str(IPERF_PORT)],
                         ready=b"listening")

        def overlay(addr: str) -> float:
            return gbits(exec_in(lab, client, *iperf_args(addr, seconds)).stdout)

        def underlay() -> float:
            return gbits(lab.run_in(client_host, iperf_args(server_host.addr, seconds), check=True,
                                    timeout=seconds + RUN_SLACK).stdout)

        runs: dict[str, list[float]] = {"underlay": [], "overlay_task_ip": [], "overlay_vip": []}
        overlay(server_ip)          # warm up: neighbours, conntrack
        for _ in range(rounds):     # in turn: a busy moment of the machine weighs on all alike
            runs["underlay"].append(underlay())
            runs["overlay_task_ip"].append(overlay(server_ip))
            runs["overlay_vip"].append(overlay("iperf"))
        gbps = {name: statistics.median(values) for name, values in runs.items()}
        return {
            "seconds_per_run": seconds, "rounds": rounds, "streams": 1,
            "gbit_s": {name: round(v, 2) for name, v in gbps.items()},
            "runs_gbit_s": {name: [round(v, 2) for v in values] for name, values in runs.items()},
            "ratio_overlay_task_ip": round(gbps["overlay_task_ip"] / gbps["underlay"], 3),
            "ratio_overlay_vip": round(gbps["overlay_vip"] / gbps["underlay"], 3),
            "goal_ratio": 0.90,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out")
    args = parser.parse_args()
    write_result("overlay_throughput", bench(args.seconds, args.rounds), args.out)


if __name__ == "__main__":
    main()
