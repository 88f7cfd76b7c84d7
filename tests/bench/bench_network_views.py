"""The dispatcher's cost per task change in the network views (manager/dispatcher/networkviews.py),
at 100 and at 1,000 nodes, on a real one-member Raft store and the real index and feeds.

Each node has one task on the network, and one open feed (as its assignments stream holds). A
change (a task's observed state STARTING <-> RUNNING, which flips its endpoint's `serving`) is
applied as the store's change event, then every woken feed builds what its stream would send;
Raft and gRPC are left out, so that the figure is the dispatcher's own work: its thread's CPU
time (the Raft thread and a busy machine move wall-clock figures by 2x), the median of
ROUNDS rounds, with the heap frozen for the collector (whose full passes grow with the heap
whatever the index does). Two cases:
  shared: every node uses the network: each change must reach every node, so its cost grows
          with the nodes that must hear of it (the figure per receiving node must stay flat);
  local:  the network is used by 10 nodes, the other nodes use networks of their own: the cost
          must not grow with the swarm (ratio ~1).

    python3 tests/bench/bench_network_views.py [--changes 2000] [--out PATH]
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import tempfile
import time
from pathlib import Path

import benchpaths  # noqa: F401  (first: puts the project on sys.path)

from manager.dispatcher.networkviews import Feed, NetworkViews
from manager.state import store as st
from manager.state.actions import create
from manager.state.tables import Event
from proto import objects_pb2 as pb
from proto import specs_pb2 as specs
from proto import store_pb2
from tests.integration.inproc import free_port_pair
from tests.support import builders

SIZES = (100, 1000)
LOCAL_USERS = 10            # nodes on the network in the "local" case
STORE_READY_TIMEOUT = 15.0  # s
CHUNK = 500                 # actions per store write while setting up
ROUNDS = 10                 # timed rounds per case; the median is reported (the Raft thread adds noise)


def network(i: int) -> pb.Network:
    return pb.Network(id=f"net{i}", spec=specs.NetworkSpec(name=f"net{i}"), subnet=f"10.{i // 250}.{i % 250}.0/24",
                      vni=4096 + i)


def objects(nodes: int, shared: bool) -> list:
    """Nodes, networks, one service per network and one task per node."""
    networks = [network(0)] if shared else [network(i) for i in range(nodes // LOCAL_USERS)]
    out: list = [*networks]
    for n in networks:
        service = builders.service(f"s-{n.id}")
        service.spec.task.networks.add(target=n.id)
        out.append(service)
    for i in range(nodes):
        node = builders.node(f"n{i}", hostname=f"host{i}")
        node.status.addr = f"10.200.{i // 250}.{i % 250}"
        net = networks[0] if shared else networks[i // LOCAL_USERS]
        task = builders.task(f"t{i}", i + 1, service_id=f"s-{net.id}", service_name=f"s-{net.id}", node_id=node.id,
                             state=pb.STARTING)
        task.networks.add(network_id=net.id, addr=f"10.100.{i // 250}.{i % 250}/16")
        out += [node, task]
    return out


async def measure(nodes: int, shared: bool, changes: int, raft_dir: Path) -> dict:
    addr = f"127.0.0.1:{free_port_pair()}"
    store = st.Store(raft_dir, addr, [], b"k" * 32, addr, st.RaftTimings(), at_rest_key=b"r" * 32)
    try:
        await store.wait_ready(STORE_READY_TIMEOUT)
        await store.wait_leads_current()
        everything = objects(nodes, shared)
        for start in range(0, len(everything), CHUNK):
            await store.write([create(o) for o in everything[start:start + CHUNK]])
        views = NetworkViews(store)
        woken: list[Feed] = []
        feeds = [views.open(f"n{i}", wake=lambda i=i: woken.append(feeds[i])) for i in range(nodes)]
        for feed in feeds:
            views.send(feed)  # the complete views, as each stream's first message
        tasks = [store.tasks.get(f"t{i}") for i in range(0, nodes, max(1, nodes // 50))]  # 50 tasks take turns
        sent, rounds = 0, []
        gc.collect()
        gc.freeze()  # the collector's passes over the whole heap are the process's cost, not the index's
        for _ in range(ROUNDS):
            began = time.thread_time()
            for k in range(changes // ROUNDS):
                task = tasks[k % len(tasks)]
                task.status.state = pb.RUNNING if task.status.state == pb.STARTING else pb.STARTING
                views.apply(Event(store_pb2.StoreAction.UPDATE, task.id, task))
                for feed in woken:
                    sent += sum(len(v.endpoints) for v in views.send(feed)[0])
                woken.clear()
            rounds.append((time.thread_time() - began) / (changes // ROUNDS))
        gc.unfreeze()
        for feed in feeds:
            views.close(feed)
        return {"nodes": nodes, "case": "shared" if shared else "local",
                "per_change_us": statistics.median(rounds) * 1e6,
                "endpoints_sent_per_change": sent / (changes // ROUNDS * ROUNDS)}
    finally:
        await asyncio.to_thread(store.close)


async def main(args) -> dict:
    results = []
    for shared in (True, False):
        for nodes in SIZES:
            with tempfile.TemporaryDirectory() as raft_dir:
                r = await measure(nodes, shared, args.changes, Path(raft_dir))
            results.append(r)
            print(f"{r['case']:>6} network, {nodes:>5} nodes: {r['per_change_us']:8.1f} us per change, "
                  f"{r['endpoints_sent_per_change']:.0f} endpoints sent", flush=True)
    summary = {}
    for case in ("shared", "local"):
        small, large = (next(r for r in results if r["case"] == case and r["nodes"] == n) for n in SIZES)
        ratio = large["per_change_us"] / small["per_change_us"]
        per_node = [r["per_change_us"] / r["endpoints_sent_per_change"] for r in (small, large)]
        summary[case] = {"ratio": ratio, "per_receiving_node_us": per_node}
        print(f"{case}: {SIZES[1]} vs {SIZES[0]} nodes: ratio {ratio:.2f} per change; "
              f"per receiving node {per_node[0]:.2f} -> {per_node[1]:.2f} us", flush=True)
    return {"results": results, "summary": summary}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--changes", type=int, default=2000)
    parser.add_argument("--out", default=str(Path(tempfile.gettempdir()) / "bench_network_views.json"))
    args = parser.parse_args()
    report = asyncio.run(main(args))
    Path(args.out).write_text(json.dumps(report, indent=1))
