"""Endpoint cost of the overlay's kernel driver: for N containers on one network of a lab
host, the time to make the container's namespace (create_endpoint_ns) and to attach it
(veth into the sandbox's bridge, MAC, MTU, address, default route), p50/p99 and mean.
Everything lives in a one-host lab with a per-run prefix and is removed at the end.

    python3 tests/bench/bench_overlay_attach.py [-n 50] [--out PATH]
"""
from __future__ import annotations

import argparse
import ipaddress
import json
import statistics
import time

import benchpaths  # noqa: F401  (first: puts the project on sys.path)

from deploy.lab import Lab  # noqa: E402
from overlay.driver import Overlay  # noqa: E402
from overlay.model import Attachment, Network  # noqa: E402

NET = Network(id="bench", vni=4097, subnet="10.40.0.0/16", gateway="10.40.0.1")


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * len(s) + 0.5) - 1))]


def summary(ms: list[float]) -> dict:
    return {"p50_ms": round(pct(ms, 50), 2), "p99_ms": round(pct(ms, 99), 2),
            "mean_ms": round(statistics.fmean(ms), 2)}


def bench(n: int) -> dict:
    lab = Lab(1, subnet="10.214.0").up()
    host = lab.hosts[0]
    overlay = Overlay(f"{lab.prefix}b", host.addr, host_netns=host.netns)
    try:
        started = time.perf_counter()
        overlay.ensure_network(NET)
        network_ms = (time.perf_counter() - started) * 1000
        create, attach, again = [], [], []
        subnet = ipaddress.IPv4Network(NET.subnet)
        for i in range(n):
            key, addr = f"e{i}", f"{subnet.network_address + 10 + i}/{subnet.prefixlen}"
            t0 = time.perf_counter()
            overlay.create_endpoint_ns(key)
            t1 = time.perf_counter()
            overlay.attach(key, [Attachment(NET, addr)])
            t2 = time.perf_counter()
            create.append((t1 - t0) * 1000)
            attach.append((t2 - t1) * 1000)
        fresh = Overlay(overlay.prefix, host.addr, host_netns=host.netns)  # a restart: checks the kernel
        try:
            for i in range(n):
                t0 = time.perf_counter()
                fresh.attach(f"e{i}", [Attachment(NET, f"{subnet.network_address + 10 + i}/{subnet.prefixlen}")])
                again.append((time.perf_counter() - t0) * 1000)
        finally:
            fresh.close()
        return {"endpoints": n, "ensure_network_ms": round(network_ms, 2), "create_endpoint_ns": summary(create),
                "attach": summary(attach), "attach_again_after_restart": summary(again)}
    finally:
        overlay.remove_all()
        overlay.close()
        lab.down()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=50)
    parser.add_argument("--out")
    args = parser.parse_args()
    result = bench(args.n)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
