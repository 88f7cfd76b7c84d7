#!/usr/bin/env python3
"""`swarm backup` of a large store: 1,000 services of 10 replicas (10,000 tasks) on a real
in-process manager (Raft, orchestrator, scheduler; no executor, so the tasks stay put).
The services are written to the store directly; the orchestrator makes their tasks.

Timed, --runs times each (median): the Backup RPC over mutual TLS from the call to the last
chunk, with the file's size and chunk count; its parts on their own: the copy on pysyncobj's
thread (Store.snapshot), encoding (formats.snapshot_of), sealing (scrypt + AES-GCM); opening
the file as --verify does; how late the manager's event loop ran during a backup; and
`swarm restore` of the file on a fresh node, from the call to a manager that answers (a
ListServices over mutual TLS that lists every service).

    python3 tests/bench/bench_backup.py [--services 1000] [--replicas 10] [--runs 3] [--out PATH]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import benchpaths  # noqa: F401  (first: puts the project on sys.path)

from covey import backupfile, tls
from coveyd.node import Node
from coveyd.settings import Settings
from manager.controlapi import backup as backup_api
from manager.state.actions import create
from manager.state.formats import snapshot_of
from proto import control_pb2, control_pb2_grpc, local_pb2
from proto import objects_pb2 as pb
from tests.integration.inproc import free_port_pair, start_manager
from tests.support.builders import service_spec
from tests.support.looplag import LoopLag
from tests.support.poll import until

PASSPHRASE = "bench passphrase"
FILL_TIMEOUT = 300.0   # s: the orchestrator making every task
QUIET = 1.0            # s without a new Raft entry before timing
BATCH = 100            # services per write


def typical_spec(i: int, replicas: int):
    """A service as one is written: some environment, placement, resources and policies
    (every task carries a copy of it, so it sets the size of the file)."""
    env = {f"SETTING_{k}": f"value-{i}-{k}-" + "x" * 24 for k in range(10)}
    return service_spec(f"svc-{i}", f"registry.example:5000/team/app-{i % 50}:v{i % 7}", replicas=replicas,
                        env=env, constraints=("node.role==worker", f"node.labels.zone!=z{i % 3}"),
                        spread=("dc",), cpus=0.25, memory=256 << 20,
                        restart={"condition": "ANY", "delay": 5.0, "max_attempts": 3},
                        update={"parallelism": 2, "delay": 10.0})


async def fill(store, services: int, replicas: int) -> None:
    now = time.time_ns()
    for first in range(0, services, BATCH):
        await store.write([create(pb.Service(id=f"svc{i:05d}", meta=pb.Meta(created_at_ns=now, updated_at_ns=now),
                                             spec=typical_spec(i, replicas), spec_version=1))
                           for i in range(first, min(first + BATCH, services))])
    await until(lambda: len(store.tasks.view()) == services * replicas, FILL_TIMEOUT, "every task made")
    last = {"index": -1, "at": time.monotonic()}

    def quiet() -> bool:
        index = store.status()["last_applied"]
        if index != last["index"]:
            last.update(index=index, at=time.monotonic())
        return time.monotonic() - last["at"] >= QUIET
    await until(quiet, FILL_TIMEOUT, "the store to be quiet", interval=0.1)


async def rpc_backup(control) -> dict:
    lag = LoopLag(tick=0.005)
    start = time.perf_counter()
    chunks = [chunk async for chunk in control.Backup(control_pb2.BackupRequest(passphrase=PASSPHRASE))]
    seconds = time.perf_counter() - start
    data = b"".join(c.data for c in chunks[1:])
    assert len(data) == chunks[0].summary.size
    return {"seconds": seconds, "bytes": len(data), "chunks": len(chunks) - 1, "loop_lag_s": lag.close(),
            "data": data, "summary": chunks[0].summary}


async def parts(store, data: bytes) -> dict:
    start = time.perf_counter()
    copy = await store.snapshot()
    copied = time.perf_counter()
    snapshot_of(copy.tables)
    encoded = time.perf_counter()
    backup_api.seal(copy, PASSPHRASE, time.time_ns())
    sealed = time.perf_counter()
    backupfile.read(data, PASSPHRASE)
    return {"snapshot_s": copied - start, "encode_s": encoded - copied, "encode_and_seal_s": sealed - copied,
            "verify_s": time.perf_counter() - sealed}


async def timed_restore(work: Path, data: bytes, run: int) -> dict:
    """Restore on a fresh node: seconds to the restore's answer, and to a manager that lists
    every service."""
    node = Node(work / f"restored{run}", f"restored{run}", Settings())
    addr = f"127.0.0.1:{free_port_pair()}"
    request = local_pb2.SwarmRestoreRequest(passphrase=PASSPHRASE, advertise_addr=addr, listen_addr=addr)
    start = time.perf_counter()
    try:
        response = await node.restore(request, data)
        restored = time.perf_counter()
        s = node.state
        async with tls.secure_channel(addr, s.ca_cert(), s.key(), s.cert()) as channel:
            listed = await control_pb2_grpc.ControlStub(channel).ListServices(control_pb2.ListServicesRequest())
        answered = time.perf_counter()
    finally:
        await node.close()
    assert len(listed.services) == response.restored.services
    return {"restore_s": restored - start, "restore_to_answer_s": answered - start}


def median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


async def bench(args, work: Path) -> dict:
    node = await start_manager(work)
    try:
        store = node.manager.store
        t0 = time.perf_counter()
        await fill(store, args.services, args.replicas)
        fill_s = time.perf_counter() - t0
        s = node.state
        async with tls.secure_channel(node.membership.advertise_addr, s.ca_cert(), s.key(), s.cert()) as channel:
            control = control_pb2_grpc.ControlStub(channel)
            rpcs = [await rpc_backup(control) for _ in range(args.runs)]
        split = [await parts(store, rpcs[-1]["data"]) for _ in range(args.runs)]
    finally:
        await node.close()
    restores = [await timed_restore(work, rpcs[-1]["data"], run) for run in range(args.runs)]
    summary = rpcs[-1]["summary"]
    return {
        "services": summary.services, "tasks": summary.tasks, "nodes": summary.nodes, "runs": args.runs,
        "fill_s": round(fill_s, 1),
        "file_bytes": rpcs[-1]["bytes"], "chunks": rpcs[-1]["chunks"],
        "backup_rpc_s": round(median(rpcs, "seconds"), 3),
        "loop_lag_max_ms": round(max(r["loop_lag_s"] for r in rpcs) * 1000, 1),
        **{key: round(median(split, key), 4) for key in split[0]},
        **{key: round(median(restores, key), 3) for key in restores[0]},
        "kdf": f"scrypt N=2^{backupfile.DEFAULT_KDF.log2_n} r={backupfile.DEFAULT_KDF.r} "
               f"p={backupfile.DEFAULT_KDF.p}",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--replicas", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", default="/tmp/covey-bench/backup.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="covey-bench-backup-") as work:
        result = asyncio.run(bench(args, Path(work)))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    r = result
    print(f"backup of {r['services']} services, {r['tasks']} tasks, {r['nodes']} nodes (median of {r['runs']}):")
    print(f"  Backup RPC over mTLS:  {r['backup_rpc_s']:.2f} s, {r['file_bytes'] / 1e6:.1f} MB in {r['chunks']} "
          f"chunks; event loop late by at most {r['loop_lag_max_ms']} ms")
    print(f"  copy on Raft's thread: {r['snapshot_s'] * 1000:.1f} ms   encode: {r['encode_s'] * 1000:.0f} ms   "
          f"encode+seal ({r['kdf']}): {r['encode_and_seal_s'] * 1000:.0f} ms")
    print(f"  open as --verify does: {r['verify_s'] * 1000:.0f} ms")
    print(f"  restore on a fresh node: {r['restore_s']:.2f} s; to a manager that lists every service: "
          f"{r['restore_to_answer_s']:.2f} s")
    print(f"  (filling the store took {r['fill_s']} s)  -> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
