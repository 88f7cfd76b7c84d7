"""`swarm restore` on in-process swarms: a backup taken under writes restores to exactly its
objects; a bad file, a node in a swarm, or a failure half-way is refused with the node left
outside any swarm; a restored swarm takes its old worker back, with no token (a manager of
another CA and an old manager are refused)."""
import asyncio
import socket

import pytest

from covey import backupfile
from covey.errors import CoveyError, FailedPrecondition, InvalidArgument, Unavailable
from coveyd import recovery
from coveyd.node import Node
from coveyd.nodestate import Membership
from manager.state.store import RaftTimings, Store
from proto import control_pb2, local_pb2
from proto import objects_pb2 as pb
from tests.integration.inproc import free_port_pair, start_manager
from tests.integration.swarmtest import swarm_test
from tests.integration.test_backup import PASSPHRASE, label_both
from tests.support.builders import service_spec

TABLES = ("nodes", "services", "tasks", "networks")


async def sealed_backup(control) -> bytes:
    """The bytes of a backup file, as `covey swarm backup` writes them."""
    chunks = [chunk async for chunk in control.Backup(control_pb2.BackupRequest(passphrase=PASSPHRASE))]
    return b"".join(c.data for c in chunks[1:])


def restore_request(port: int, passphrase: str = PASSPHRASE) -> local_pb2.SwarmRestoreRequest:
    return local_pb2.SwarmRestoreRequest(passphrase=passphrase, advertise_addr=f"127.0.0.1:{port}",
                                         listen_addr=f"127.0.0.1:{port}")


def outside_any_swarm(node: Node) -> bool:
    """What a refused restore must leave: no membership, no manager, nothing in the data dir."""
    s = node.state
    written = [p for p in (s.swarm_file, s.cert_dir, s.raft_dir) if p.exists()]
    return node.membership is None and node.manager is None and not written and node.info().node_id == ""


def as_created(obj):
    """`obj` as the restore writes it: the store numbers versions of its own from 1, and an
    old node is Down until it joins again."""
    copy = type(obj)()
    copy.CopyFrom(obj)
    copy.meta.version = 1
    if isinstance(copy, pb.Node):
        copy.status.state, copy.status.message = pb.NodeStatus.DOWN, recovery.NOT_REJOINED
    return copy


@swarm_test(managers=1, workers=2)
async def test_a_backup_taken_under_writes_restores_to_exactly_its_objects(swarm):
    await swarm.create(service_spec("web", replicas=3))
    await swarm.until(lambda: swarm.converged("web", 3), what="3 running")
    store = swarm.nodes["m1"].node.manager.store
    stop = asyncio.Event()
    writer = asyncio.create_task(label_both(store, [swarm.nodes["w1"].id, swarm.nodes["w2"].id], stop))
    try:
        await swarm.until(lambda: "counter" in store.nodes.get(swarm.nodes["w1"].id).spec.labels,
                          what="the writer's first write")
        backup = backupfile.read(await sealed_backup(swarm.control), PASSPHRASE)
    finally:
        stop.set()
        await writer
    port = free_port_pair()
    me = Membership(cluster_id=backup.store.clusters[0].id, node_id="restored1", role=pb.MANAGER,
                    advertise_addr=f"127.0.0.1:{port}", raft_addr=f"127.0.0.1:{port + 1}")
    fresh = Store(swarm.tmp_path / "fresh-raft", me.raft_addr, [], b"k" * 32, me.raft_addr, RaftTimings(), b"r" * 32)
    try:
        await fresh.wait_ready(15)
        cluster = await recovery.restore_backup(fresh, backup, me, "r1")
        old_managers = {n.id for n in backup.store.nodes if n.role == pb.MANAGER}
        for table in TABLES:
            restored = {o.id: o for o in getattr(fresh, table).list()}
            for obj in getattr(backup.store, table):
                if obj.id not in old_managers:
                    assert restored.pop(obj.id) == as_created(obj), f"{table} {obj.id}"
            assert list(restored) == (["restored1"] if table == "nodes" else []), table
        assert fresh.clusters.list() == [as_created(cluster)]  # service creates wrote it (their port guard)
        assert list(cluster.removed_nodes) == sorted(old_managers) == [swarm.nodes["m1"].id]
        del cluster.removed_nodes[:]
        assert as_created(cluster) == as_created(backup.store.clusters[0])
    finally:
        await asyncio.to_thread(fresh.close)


def damaged(sealed: bytes) -> dict[str, tuple[bytes, str, str]]:
    """name -> (file, passphrase, what the refusal says)."""
    newer = bytearray(sealed)
    newer[len(backupfile.MAGIC):len(backupfile.MAGIC) + 2] = (backupfile.VERSION + 1).to_bytes(2, "big")
    flipped = bytearray(sealed)
    flipped[-1] ^= 1
    return {"wrong passphrase": (sealed, "not the passphrase", "wrong passphrase"),
            "corrupt": (bytes(flipped), PASSPHRASE, "is corrupt"),
            "truncated": (sealed[:len(sealed) - 100], PASSPHRASE, "is truncated"),
            "newer format": (bytes(newer), PASSPHRASE, "newer than this covey reads"),
            "not a backup": (b"hello", PASSPHRASE, "is not a Covey backup file")}


@swarm_test(managers=2, workers=1, drain_managers=True, skip_checks=("known_nodes",))
async def test_restore_on_a_new_node_refusals_then_the_old_worker_rejoins(swarm):
    # known_nodes: the stopped old managers keep their stores, which the checks would read.
    await swarm.create(service_spec("web", replicas=2))
    await swarm.until(lambda: swarm.converged("web", 2), what="web: 2 running on w1")
    sealed = await sealed_backup(swarm.control)
    old_managers = {swarm.nodes["m1"].id, swarm.nodes["m2"].id}
    await swarm.stop("m1")
    await swarm.stop("m2")
    r1 = swarm._new_node("r1", manager=True).node
    port = free_port_pair()

    for name, (data, passphrase, says) in damaged(sealed).items():
        with pytest.raises(CoveyError, match=says):
            await r1.restore(restore_request(port, passphrase), data)
        assert outside_any_swarm(r1), name
    with socket.socket() as taken:  # the API port in use: refused after Raft started, all undone
        taken.bind(("127.0.0.1", port))
        with pytest.raises(Unavailable, match="cannot listen"):
            await r1.restore(restore_request(port), sealed)
    assert outside_any_swarm(r1)
    w1 = swarm.nodes["w1"].node
    with pytest.raises(FailedPrecondition, match="already part of a swarm"):
        await w1.restore(restore_request(free_port_pair()), sealed)
    assert w1.manager is None and w1.membership is not None

    response = await r1.restore(restore_request(port), sealed)
    assert set(response.removed_managers) == old_managers and response.manager_addr == f"127.0.0.1:{port}"
    assert (response.restored.services, response.restored.nodes) == (1, 3)
    await swarm.use("r1")
    assert await swarm.node("m1") is None and await swarm.node("m2") is None
    me = await swarm.node("r1")
    assert me.id == response.node_id and me.role == pb.MANAGER and me.id not in old_managers

    other = await start_manager(swarm.tmp_path, "other")  # a swarm of another CA
    try:
        managers = list(w1.membership.managers)
        with pytest.raises(InvalidArgument, match="another root CA"):
            await w1.join(local_pb2.SwarmJoinRequest(remote_addr=other.membership.advertise_addr))
        assert w1.membership.managers == managers
    finally:
        await other.close()
    with pytest.raises(FailedPrecondition, match="this node was a manager"):
        await swarm.nodes["m1"].node.join(local_pb2.SwarmJoinRequest(remote_addr=response.manager_addr))
    rejoined = await w1.join(local_pb2.SwarmJoinRequest(remote_addr=response.manager_addr))
    assert rejoined.node_id == swarm.nodes["w1"].id and rejoined.role == pb.WORKER
    await swarm.until_ready("w1")
    await swarm.until(lambda: swarm.converged("web", 2), what="web: 2 running after the restore")
