"""Raft store throughput and commit latency: 3 managers as separate processes, each a
manager.state.store.Store on 127.0.0.1, with and without the safety layer of manager/state/raft/safety.py
(sealed journal, one fsync per batch before any send, truncation fix), for a few pysyncobj
settings. Writes go to the leader: acknowledged small-write throughput (writes/s, with a
window of writes in flight) and single-write commit latency (p50/p99, one at a time).
Also counts pysyncobj's "truncating already-applied log entries" warnings per run.

    python3 tests/bench/bench_raft.py [--writes 3000] [--samples 100] [--out PATH]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import select
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchpaths import REPO  # first: puts the project on sys.path

from tests.support.poll import wait_until  # noqa: E402

SETTINGS = [  # (name, appendEntriesPeriod, autoTickPeriod, appendEntriesUseBatch)
    ("batch 10ms/5ms", 0.01, 0.005, True),
    ("batch 5ms/2ms", 0.005, 0.002, True),
    ("no batch 10ms/5ms", 0.01, 0.005, False),
]
START_TIMEOUT = 30.0
RUN_TIMEOUT = 120.0


# ---------------------------------------------------------------- child: one manager

def wire_layer(st, raft_dir: Path, use_batch: bool, durable: bool) -> None:
    """Store always uses the safety layer; for the baseline ("off") give it pysyncobj's own
    journal, snapshot file and transport instead. Batching is a pysyncobj setting."""
    from pysyncobj.transport import TCPTransport
    base_conf, base_options = st.SyncObjConf, st.safety.syncobj_options

    def stock_options(raft_dir, at_rest_key, get_tables, set_tables):
        raft_dir.mkdir(parents=True, exist_ok=True)
        return {"journalFile": str(raft_dir / "journal.bin"), "fullDumpFile": str(raft_dir / "snapshot.bin")}, \
            TCPTransport

    class Options:  # what store.py sees as `safety`
        syncobj_options = staticmethod(base_options if durable else stock_options)

    st.safety = Options
    st.SyncObjConf = lambda **kwargs: base_conf(**kwargs, appendEntriesUseBatch=use_batch)


async def child(args) -> None:
    from manager.state import store as st
    from manager.state.actions import create
    from proto import objects_pb2 as pb
    raft_dir = Path(args.raft_dir)
    wire_layer(st, raft_dir, args.batch, args.durable)
    timings = st.RaftTimings(append_period=args.append_period, tick_period=args.tick_period)
    store = st.Store(raft_dir, args.addr, args.peers.split(","), b"k" * 32, args.addr, timings,
                     at_rest_key=bytes([args.index + 1]) * 32)
    await store.wait_ready(START_TIMEOUT)
    loop = asyncio.get_running_loop()
    counter = iter(range(10**9))

    async def write():
        node = pb.Node(id=f"n{next(counter):024d}", spec=pb.NodeSpec(labels={"pad": "x" * 50}))
        await store.write([create(node)])

    reply({"ready": True})
    while True:
        line = (await loop.run_in_executor(None, sys.stdin.readline)).split()
        if not line or line[0] == "quit":
            break
        if line[0] == "role":
            reply({"leader": store.is_leader()})
        elif line[0] == "throughput":
            reply(await throughput(write, int(line[1]), int(line[2])))
        elif line[0] == "latency":
            reply(await latency(write, int(line[1])))
    store.close()


async def throughput(write, count: int, window: int) -> dict:
    gate = asyncio.Semaphore(window)

    async def one():
        async with gate:
            await write()
    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(count)))
    return {"writes_per_s": count / (time.perf_counter() - start)}


async def latency(write, count: int) -> dict:
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        await write()
        samples.append((time.perf_counter() - start) * 1000)
    return {"p50_ms": pct(samples, 50), "p99_ms": pct(samples, 99), "mean_ms": statistics.mean(samples)}


def reply(obj: dict) -> None:
    print(json.dumps(obj), flush=True)


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * len(s) + 0.5) - 1))]


# ---------------------------------------------------------------- parent: the cluster

class Manager:
    def __init__(self, index: int, addr: str, peers: list[str], workdir: Path, setting, durable: bool):
        _, append_period, tick_period, batch = setting
        self.stderr_path = workdir / f"m{index}.stderr"
        cmd = [sys.executable, __file__, "--child", "--index", str(index), "--addr", addr,
               "--peers", ",".join(peers), "--raft-dir", str(workdir / f"m{index}"),
               "--append-period", str(append_period), "--tick-period", str(tick_period)]
        cmd += ["--batch"] if batch else []
        cmd += ["--durable"] if durable else []
        with open(self.stderr_path, "w") as err:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                                         text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})

    def ask(self, command: str, timeout: float) -> dict:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.read(timeout)

    def read(self, timeout: float) -> dict:
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            raise RuntimeError(f"manager {self.proc.pid} did not answer; see {self.stderr_path}")
        return json.loads(line)

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(5)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()

    def truncations(self) -> int:
        return self.stderr_path.read_text().count("truncating already-applied")


def free_ports(count: int) -> list[int]:
    import socket
    socks = [socket.socket() for _ in range(count)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def run_one(setting, durable: bool, writes: int, samples: int, window: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-raft-") as tmp:
        addrs = [f"127.0.0.1:{p}" for p in free_ports(3)]
        managers = []
        try:
            for i, addr in enumerate(addrs):
                managers.append(Manager(i, addr, [a for a in addrs if a != addr], Path(tmp), setting, durable))
            for m in managers:
                m.read(START_TIMEOUT)
            leader = wait_leader(managers)
            result = leader.ask(f"throughput {writes} {window}", RUN_TIMEOUT)
            result |= leader.ask(f"latency {samples}", RUN_TIMEOUT)
        finally:
            for m in managers:
                m.stop()
        result["truncation_warnings"] = sum(m.truncations() for m in managers)
    return {"setting": setting[0], "append_period": setting[1], "tick_period": setting[2],
            "batch": setting[3], "layer": durable, **result}


def wait_leader(managers: list[Manager]) -> Manager:
    def one_leader():
        leaders = [m for m in managers if m.ask("role", 10)["leader"]]
        return leaders[0] if len(leaders) == 1 else None
    return wait_until(one_leader, START_TIMEOUT, 0.1, "a single leader")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--writes", type=int, default=3000)
    parser.add_argument("--window", type=int, default=500)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--out", default=str(Path(tempfile.gettempdir()) / "bench_raft.json"))
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--index", type=int)
    parser.add_argument("--addr")
    parser.add_argument("--peers")
    parser.add_argument("--raft-dir")
    parser.add_argument("--append-period", type=float)
    parser.add_argument("--tick-period", type=float)
    parser.add_argument("--batch", action="store_true")
    parser.add_argument("--durable", action="store_true")
    args = parser.parse_args()
    if args.child:
        asyncio.run(child(args))
        return 0
    rows = []
    print(f"{'setting':20} {'layer':6} {'writes/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'trunc':>5}")
    for setting in SETTINGS:
        for durable in (False, True):
            row = run_one(setting, durable, args.writes, args.samples, args.window)
            rows.append(row)
            print(f"{row['setting']:20} {'on' if durable else 'off':6} {row['writes_per_s']:9.0f} "
                  f"{row['p50_ms']:7.1f} {row['p99_ms']:7.1f} {row['truncation_warnings']:5d}", flush=True)
    Path(args.out).write_text(json.dumps({"writes": args.writes, "window": args.window,
                                          "samples": args.samples, "rows": rows}, indent=2))
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
