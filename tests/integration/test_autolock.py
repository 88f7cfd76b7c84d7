"""Autolock, unlock-key rotation, root CA rotation and `swarm update`, on in-process swarms of
real managers (Raft, dispatcher, CA, mutual TLS on loopback)."""
import asyncio

import grpc
import pytest

from covey import pki
from covey.errors import FailedPrecondition, InvalidArgument
from coveyd import autolock
from coveyd.node import Node
from coveyd.nodestate import KEY_FILES
from manager.ca import authz
from manager.orchestrator.services import history_limit
from proto import control_pb2, dispatcher_pb2, local_pb2
from proto import objects_pb2 as pb
from tests.integration.simkit import Swarm
from tests.integration.swarmtest import swarm_test
from tests.support.builders import SECOND, service_spec

SCENARIO_TIMEOUT = 60.0  # s: a whole scenario, as swarm_test gives one


async def _restart(swarm, hostname: str) -> Node:
    """Stop the node's coveyd and start a new one on the same data dir, as after a reboot."""
    sim = swarm.nodes[hostname]
    await sim.node.close()
    sim.node = Node(swarm.tmp_path / hostname, hostname, swarm.settings, sim.executor)
    await sim.node.resume()
    return sim.node


def _sealed(node: Node) -> dict[str, bool]:
    return {name: autolock.is_sealed((node.state.cert_dir / name).read_bytes()) for name in KEY_FILES}


def _on_disk(node: Node) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(node.state.cert_dir.iterdir())}


async def _unlock_key(swarm, rotate: bool = False) -> str:
    return (await swarm.control.UnlockKey(control_pb2.UnlockKeyRequest(rotate=rotate))).unlock_key


async def _caught_up(swarm, hostname: str) -> bool:
    manager = swarm.nodes[hostname].node.manager
    return manager is not None and manager.store.ready() and manager.store.caught_up()


@swarm_test(managers=3)
async def test_locked_manager_refuses_a_wrong_key_and_rotation_retires_the_old_one(swarm):
    await swarm.control.UpdateCluster(control_pb2.UpdateClusterRequest(autolock=True))
    key = await _unlock_key(swarm)
    m3 = swarm.nodes["m3"].node
    await swarm.until(lambda: all(_sealed(m3).values()), what="m3's keys sealed by the unlock key")

    m3 = await _restart(swarm, "m3")
    assert m3.locked and m3.manager is None
    before = _on_disk(m3)
    wrong = pki.format_unlock_key(pki.new_unlock_key())
    with pytest.raises(InvalidArgument, match="does not open this node's keys"):
        await m3.unlock(local_pb2.SwarmUnlockRequest(unlock_key=wrong))
    with pytest.raises(InvalidArgument, match="an unlock key looks like"):
        await m3.unlock(local_pb2.SwarmUnlockRequest(unlock_key="SWMKEY-1-nonsense"))
    assert m3.locked and m3.manager is None and _on_disk(m3) == before  # no state change

    await m3.unlock(local_pb2.SwarmUnlockRequest(unlock_key=key))
    assert not m3.locked
    await swarm.until(lambda: _caught_up(swarm, "m3"), what="m3 back in Raft and caught up")
    with pytest.raises(FailedPrecondition, match="not locked"):
        await m3.unlock(local_pb2.SwarmUnlockRequest(unlock_key=key))

    new_key = await _unlock_key(swarm, rotate=True)
    assert new_key != key
    await swarm.until(lambda: m3.state.unlock_key == pki.parse_unlock_key(new_key),
                      what="m3 resealed its keys with the rotated unlock key")
    m3 = await _restart(swarm, "m3")
    with pytest.raises(InvalidArgument, match="does not open"):
        await m3.unlock(local_pb2.SwarmUnlockRequest(unlock_key=key))
    await m3.unlock(local_pb2.SwarmUnlockRequest(unlock_key=new_key))
    await swarm.until(lambda: _caught_up(swarm, "m3"), what="m3 unlocked with the new key")

    await swarm.control.UpdateCluster(control_pb2.UpdateClusterRequest(autolock=False))
    nodes = [swarm.nodes[h].node for h in ("m1", "m2", "m3")]
    await swarm.until(lambda: not any(v for n in nodes for v in _sealed(n).values()),
                      what="every manager's keys unsealed with autolock off")
    m3 = await _restart(swarm, "m3")
    assert not m3.locked
    await swarm.until(lambda: _caught_up(swarm, "m3"), what="m3 restarted unlocked")


@swarm_test(managers=1)
async def test_unlock_key_needs_autolock_and_is_never_shown_by_get_cluster(swarm):
    with pytest.raises(grpc.aio.AioRpcError, match="autolock is not enabled"):
        await _unlock_key(swarm)
    cluster = (await swarm.control.UpdateCluster(control_pb2.UpdateClusterRequest(autolock=True))).cluster
    assert cluster.spec.autolock and not cluster.unlock_key
    shown = (await swarm.control.GetCluster(control_pb2.GetClusterRequest())).cluster
    assert not shown.unlock_key and not shown.root_ca.ca_key_pem
    assert pki.parse_unlock_key(await _unlock_key(swarm))


@swarm_test(managers=1, workers=2)
async def test_root_ca_rotation_moves_every_node_without_restarting_tasks(swarm):
    await swarm.create(service_spec("web", replicas=4))
    before = {t.id for t in await swarm.until(lambda: swarm.converged("web", 4), what="4 running")}
    old = (await swarm.control.GetCluster(control_pb2.GetClusterRequest())).cluster
    old_token = (await swarm.control.JoinToken(control_pb2.JoinTokenRequest(role=pb.WORKER))).token

    rotated = (await swarm.control.RotateRootCA(control_pb2.RotateRootCARequest())).cluster
    assert rotated.root_ca.previous_ca_cert_pem == old.root_ca.ca_cert_pem
    assert rotated.root_ca.ca_digest != old.root_ca.ca_digest
    with pytest.raises(grpc.aio.AioRpcError, match="already in progress"):
        await swarm.control.RotateRootCA(control_pb2.RotateRootCARequest())

    async def done():
        await swarm.use("m1")  # with m1's certificate as it is now: the old CA's stops being trusted
        cluster = (await swarm.control.GetCluster(control_pb2.GetClusterRequest())).cluster
        return cluster if not cluster.root_ca.previous_ca_cert_pem else None
    cluster = await swarm.until(done, what="every node on the new root CA, the old one dropped")
    new_ca = cluster.root_ca.ca_cert_pem
    for hostname, sim in swarm.nodes.items():
        assert pki.verify_signed_by(sim.node.state.cert(), new_ca), f"{hostname} has no certificate of the new CA"
        await swarm.until(lambda sim=sim: sim.node.state.ca_cert() == new_ca, what=f"{hostname} trusts the new CA only")
    nodes = (await swarm.control.ListNodes(control_pb2.ListNodesRequest())).nodes
    assert {n.cert_ca_digest for n in nodes} == {cluster.root_ca.ca_digest}
    assert all(n.status.state == pb.NodeStatus.READY for n in nodes)

    new_token = (await swarm.control.JoinToken(control_pb2.JoinTokenRequest(role=pb.WORKER))).token
    assert pki.parse_token(new_token) == (cluster.root_ca.ca_digest, pki.parse_token(old_token)[1])
    assert {t.id for t in await swarm.converged("web", 4) or []} == before  # no task was replaced
    await swarm.join("w3")  # a node joins with the new token's digest


@swarm_test(managers=1)
async def test_swarm_update_stores_settings_the_dispatcher_and_reaper_use(swarm):
    for bad, message in ((control_pb2.UpdateClusterRequest(heartbeat_period_ns=SECOND // 20), "at least 100ms"),
                         (control_pb2.UpdateClusterRequest(task_history_limit=-1), "cannot be negative"),
                         (control_pb2.UpdateClusterRequest(node_cert_expiry_ns=SECOND), "at least 10s")):
        with pytest.raises(grpc.aio.AioRpcError, match=message) as refused:
            await swarm.control.UpdateCluster(bad)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    before = (await swarm.control.GetCluster(control_pb2.GetClusterRequest())).cluster
    assert not before.spec.HasField("task_history_limit")

    request = control_pb2.UpdateClusterRequest(heartbeat_period_ns=SECOND // 2, task_history_limit=2,
                                               node_cert_expiry_ns=3600 * SECOND)
    cluster = (await swarm.control.UpdateCluster(request)).cluster
    assert cluster.meta.version > before.meta.version
    assert (cluster.spec.heartbeat_period_ns, cluster.spec.task_history_limit,
            cluster.spec.node_cert_expiry_ns) == (SECOND // 2, 2, 3600 * SECOND)
    assert cluster.spec.autolock is False and cluster.spec.name == before.spec.name
    sessions = swarm.leader().node.manager.dispatcher.sessions
    assert sessions.heartbeat_period() == 0.5
    node_id = swarm.nodes["m1"].id  # its agent's next beat is asked for at the new period (jittered down 10%)
    beat = dispatcher_pb2.HeartbeatRequest(session_id=sessions._sessions[node_id].session_id)

    async def one_beat():
        yield beat
    answer = await anext(sessions.heartbeats(one_beat(), None, authz.Caller(node_id=node_id, role=pb.MANAGER)))
    assert 0.45 * SECOND <= answer.period_ns <= 0.5 * SECOND
    assert history_limit(swarm.leader().node.manager.store) == 2


def test_init_with_autolock_seals_at_once_and_a_lone_manager_restarts_locked(tmp_path):
    async def scenario():
        async with Swarm(tmp_path) as swarm:
            await swarm.init("m1", autolock=True)
            key = await _unlock_key(swarm)
            await swarm.until(lambda: all(_sealed(swarm.nodes["m1"].node).values()), what="m1's keys sealed")
            m1 = await _restart(swarm, "m1")
            with pytest.raises(FailedPrecondition, match="this node is locked: run covey swarm unlock"):
                m1.state.key()
            await m1.unlock(local_pb2.SwarmUnlockRequest(unlock_key=key))
            await swarm.until(lambda: _caught_up(swarm, "m1"), what="m1 leads again")
            await swarm.use("m1")
            await swarm.until_ready("m1")
    asyncio.run(asyncio.wait_for(scenario(), SCENARIO_TIMEOUT))
