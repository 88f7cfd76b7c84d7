"""The ingress routing mesh on a real 3-host lab swarm (real coveyd, runc, overlay and mesh):
HTTP requests/s with wrk, with a new connection per request and with keep-alive, through the
mesh to the node that runs the task (host2) and to one that runs none (host3, across the
overlay), as ratios to the same server program (lighttpd) straight on host2's address; the
same task again through a host-mode port (no mesh: what reaching a container costs at all);
and bulk TCP (iperf3, one stream) through the mesh vs straight. The client is the lab resolver's
namespace, on the underlay. Runs in turn for --rounds rounds (median). Everything is removed
at the end. Goals: new connections >= 0.90, keep-alive >= 0.95, bulk TCP >= 0.95.

    python3 tests/bench/bench_mesh_swarm.py [--seconds 3] [--rounds 3] [--connections 8] [--out PATH]
"""
from __future__ import annotations

import argparse
import json
import re
import statistics

import benchpaths  # noqa: F401  (first: puts the project on sys.path)
from swarmbench import (  # noqa: E402
    HTTP_PORT,
    INDEX,
    IPERF,
    IPERF_PORT,
    LIGHTTPD,
    LIGHTTPD_CONF,
    bench_images,
    lighttpd_root,
    write_result,
)

from tests.e2e.swarmtools import swarm_with_registry  # noqa: E402
from tests.e2e.test_overlay import converge, covey  # noqa: E402

TASK_HOST = "host2"
DIRECT_HTTP, DIRECT_IPERF = 8070, 5202     # the same programs straight on host2's address
HOST_MODE_HTTP = 8090       # the web task's port published in host mode, on host2 only
RUN_SLACK = 30.0            # s: beyond --seconds, one client run must have ended
WRK_THREADS = 2             # this machine has 2 cores
RATE = re.compile(r"Requests/sec:\s+([\d.]+)")
ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")


def wrk(lab, addr: str, port: int, seconds: int, connections: int, keep_alive: bool) -> float:
    """Requests/s; an error or a failed answer ends the bench (a rate of failures means nothing)."""
    argv = ["wrk", f"-t{WRK_THREADS}", f"-c{connections}", f"-d{seconds}s"]
    if not keep_alive:
        argv += ["-H", "Connection: close"]
    out = lab.run_in(lab.resolver, [*argv, f"http://{addr}:{port}/index.html"], check=True,
                     timeout=seconds + RUN_SLACK).stdout
    errors, non_2xx = ERRORS.search(out), NON_2XX.search(out)
    if (errors and any(int(n) for n in errors.groups())) or non_2xx:
        raise RuntimeError(f"wrk to {addr}:{port} saw failures:\n{out}")
    return float(RATE.search(out).group(1))


def iperf(lab, addr: str, port: int, seconds: float) -> float:
    out = lab.run_in(lab.resolver, ["iperf3", "-c", addr, "-p", str(port), "-t", str(seconds), "-J"],
                     check=True, timeout=seconds + RUN_SLACK).stdout
    return json.loads(out)["end"]["sum_received"]["bits_per_second"] / 1e9


def start_direct_servers(lab, host) -> None:
    root = lighttpd_root(lab.dir / "extra-images")
    www = lab.dir / "direct-www"
    www.mkdir(exist_ok=True)
    (www / "index.html").write_text(INDEX)
    conf = lab.dir / "direct-lighttpd.conf"
    conf.write_text(LIGHTTPD_CONF.replace('"/www"', f'"{www}"').format(port=DIRECT_HTTP))
    lab.start_helper("lighttpd-direct", host, [str(root / "usr/sbin/lighttpd"), "-D", "-f", str(conf)],
                     ready=b"server started")
    lab.start_helper("iperf-direct", host, ["iperf3", "-s", "--forceflush", "-p", str(DIRECT_IPERF)],
                     ready=b"listening")


def in_turn(targets: dict, measure, rounds: int) -> tuple[dict[str, float], dict[str, list[float]]]:
    """The median of each target over the rounds, the targets taken in turn within a round."""
    runs: dict[str, list[float]] = {name: [] for name in targets}
    for _ in range(rounds):
        for name, (addr, port) in targets.items():
            runs[name].append(measure(addr, port))
    return {name: statistics.median(v) for name, v in runs.items()}, runs


def ratios(medians: dict[str, float]) -> dict[str, float]:
    return {name: round(v / medians["direct"], 3) for name, v in medians.items() if name != "direct"}


def bench(seconds: int, rounds: int, connections: int) -> dict:
    with swarm_with_registry(3, extra_images=bench_images) as lab:
        lab.start_resolver({})          # its namespace is the outside client's
        with_task, without_task = lab.hosts[1], lab.hosts[2]
        on_node = ["--constraint", f"node.hostname=={TASK_HOST}", "-d"]
        covey(lab, "service", "create", "--name", "web", "-p", f"{HTTP_PORT}:{HTTP_PORT}", *on_node, LIGHTTPD)
        covey(lab, "service", "create", "--name", "web-host", "--publish",
              f"published={HOST_MODE_HTTP},target={HTTP_PORT},mode=host", *on_node, LIGHTTPD)
        covey(lab, "service", "create", "--name", "iperf", "-p", f"{IPERF_PORT}:{IPERF_PORT}", *on_node, IPERF)
        converge(lab, "web", 1)
        converge(lab, "web-host", 1)
        converge(lab, "iperf", 1)
        start_direct_servers(lab, with_task)

        def targets(mesh_port: int, direct_port: int) -> dict[str, tuple[str, int]]:
            return {"direct": (with_task.addr, direct_port), "mesh_node_with_task": (with_task.addr, mesh_port),
                    "mesh_node_without_task": (without_task.addr, mesh_port)}

        http = {**targets(HTTP_PORT, DIRECT_HTTP), "host_mode_port": (with_task.addr, HOST_MODE_HTTP)}
        wrk(lab, without_task.addr, HTTP_PORT, 1, connections, False)     # warm up: neighbours, conntrack
        result: dict = {"seconds_per_run": seconds, "rounds": rounds, "wrk_connections": connections,
                        "wrk_threads": WRK_THREADS}
        for mode, keep_alive in (("new_connection", False), ("keep_alive", True)):
            medians, runs = in_turn(http, lambda a, p, k=keep_alive: wrk(lab, a, p, seconds, connections, k), rounds)
            result[f"{mode}_rps"] = {name: round(v) for name, v in medians.items()}
            result[f"{mode}_ratio"] = ratios(medians)
        gbps, runs = in_turn(targets(IPERF_PORT, DIRECT_IPERF), lambda a, p: iperf(lab, a, p, seconds), rounds)
        result["bulk_tcp_gbit_s"] = {name: round(v, 2) for name, v in gbps.items()}
        result["bulk_tcp_ratio"] = ratios(gbps)
        result["goals"] = {"new_connection": 0.90, "keep_alive": 0.95, "bulk_tcp": 0.95}
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--out")
    args = parser.parse_args()
    write_result("mesh_swarm", bench(args.seconds, args.rounds, args.connections), args.out)


if __name__ == "__main__":
    main()
