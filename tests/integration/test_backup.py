"""Backups over the control API of an in-process swarm: each is a consistent copy of the store
at one Raft index, taken while writes go on, and equals the store object by object."""
import asyncio

import grpc
import pytest

from covey import backupfile
from covey.errors import Conflict
from manager.state.actions import update
from proto import backup_pb2, control_pb2
from proto import objects_pb2 as pb
from tests.integration.swarmtest import swarm_test
from tests.support.builders import service_spec

PASSPHRASE = "integration passphrase"
KINDS = {"clusters": pb.Cluster, "nodes": pb.Node, "services": pb.Service, "tasks": pb.Task,
         "networks": pb.Network}


async def take_backup(control) -> tuple[backup_pb2.BackupSummary, backup_pb2.Backup]:
    """One backup through the RPC: its summary, and its contents opened as the CLI opens them."""
    stream = control.Backup(control_pb2.BackupRequest(passphrase=PASSPHRASE))
    chunks = [chunk async for chunk in stream]
    assert chunks[0].WhichOneof("part") == "summary"
    assert all(c.WhichOneof("part") == "data" for c in chunks[1:])
    data = b"".join(c.data for c in chunks[1:])
    assert len(data) == chunks[0].summary.size
    return chunks[0].summary, backupfile.read(data, PASSPHRASE)


async def label_both(store, node_ids: list[str], stop: asyncio.Event) -> int:
    """Set the label counter=i on both nodes in one write, i = 1, 2, ... until `stop`."""
    i = 0
    while not stop.is_set():
        nodes = [store.nodes.get(node_id) for node_id in node_ids]
        for node in nodes:
            node.spec.labels["counter"] = str(i + 1)
        try:
            await store.write([update(node) for node in nodes])
        except Conflict:  # a heartbeat or report changed a node: read again
            continue
        i += 1
    return i


def applied(store) -> int:
    return store.status()["last_applied"]


@swarm_test(managers=1, workers=2)
async def test_backups_taken_during_writes_see_both_objects_of_each_write(swarm):
    await swarm.create(service_spec("web", replicas=2))
    await swarm.until(lambda: swarm.converged("web", 2), what="2 running")
    store = swarm.nodes["m1"].node.manager.store
    stop = asyncio.Event()
    writer = asyncio.create_task(label_both(store, [swarm.nodes["w1"].id, swarm.nodes["w2"].id], stop))
    seen = []
    try:
        await swarm.until(lambda: "counter" in store.nodes.get(swarm.nodes["w1"].id).spec.labels,
                          what="the writer's first write")
        for _ in range(4):
            before = applied(store)
            summary, backup = await take_backup(swarm.control)
            assert before <= backup.raft_index <= applied(store)
            labels = [n.spec.labels["counter"] for n in backup.store.nodes if "counter" in n.spec.labels]
            assert len(labels) == 2 and labels[0] == labels[1], f"a write seen in half: {labels}"
            seen.append(int(labels[0]))
            counts = (summary.clusters, summary.nodes, summary.services, summary.tasks, summary.networks)
            assert counts == tuple(len(store.table(cls).list()) for cls in KINDS.values())
            assert (summary.raft_index, summary.cluster_id) == (backup.raft_index, backup.store.clusters[0].id)
    finally:
        stop.set()
        writes = await writer
    assert len(set(seen)) > 1 and writes > seen[-1] > seen[0], (seen, writes)


@swarm_test(managers=3)
async def test_a_backup_from_a_follower_equals_its_store_object_by_object(swarm):
    await swarm.create(service_spec("web", replicas=3))
    await swarm.until(lambda: len([t for t in swarm.leader().node.manager.store.tasks.list()
                                   if t.status.state == pb.RUNNING]) == 3, what="3 running")
    follower = next(h for h, sim in swarm.nodes.items() if not sim.node.manager.store.is_leader())
    await swarm.use(follower)
    store = swarm.nodes[follower].node.manager.store

    async def equal_to_the_store():
        _, backup = await take_backup(swarm.control)
        index = applied(store)
        objects = {kind: sorted(store.table(cls).list(), key=lambda o: o.id) for kind, cls in KINDS.items()}
        if applied(store) != index or backup.raft_index != index:
            return None  # a write came in between: take another
        return backup, objects

    backup, objects = await swarm.until(equal_to_the_store, what="a backup at the store's index")
    for kind in KINDS:
        assert sorted(getattr(backup.store, kind), key=lambda o: o.id) == objects[kind], kind
    assert len(backup.store.nodes) == 3 and len(backup.store.tasks) >= 3
    secrets = backup.store.clusters[0]
    assert secrets.root_ca.ca_key_pem and secrets.raft_key and secrets.join_tokens.worker


async def backup_bytes(control, request: control_pb2.BackupRequest) -> bytes:
    chunks = [chunk async for chunk in control.Backup(request)]
    return b"".join(c.data for c in chunks[1:])


@swarm_test(managers=1)
async def test_with_autolock_the_unlock_key_encrypts_the_backup(swarm):
    with_key = control_pb2.BackupRequest(with_unlock_key=True)
    with pytest.raises(grpc.aio.AioRpcError, match="autolock is not enabled") as refused:
        await backup_bytes(swarm.control, with_key)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    await swarm.control.UpdateCluster(control_pb2.UpdateClusterRequest(autolock=True))
    key = (await swarm.control.UnlockKey(control_pb2.UnlockKeyRequest())).unlock_key
    data = await backup_bytes(swarm.control, with_key)
    assert backupfile.read(data, key).store.clusters[0].spec.autolock     # the key is the passphrase
    with pytest.raises(backupfile.WrongPassphrase):
        backupfile.read(data, PASSPHRASE)
    both = control_pb2.BackupRequest(with_unlock_key=True, passphrase=PASSPHRASE)
    with pytest.raises(grpc.aio.AioRpcError, match="give one of the two"):
        await backup_bytes(swarm.control, both)
