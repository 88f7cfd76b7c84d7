"""Reads through any manager are linearizable (issue 12), and failed writes say whether they
may have been applied: 3 in-process managers (real Raft, real gRPC with mutual TLS)."""
import time

import grpc
import pytest

from covey import tls
from covey.errors import MAYBE_APPLIED, NOT_APPLIED, Outcome, from_rpc_error
from manager.state.store import READ_GRACE, RaftTimings
from proto import control_pb2, control_pb2_grpc
from tests.integration.simkit import SimNode, fast_settings
from tests.integration.swarmtest import swarm_test

ROUNDS = 60   # writes, each read at once through both followers


class RaftCut:
    """Drops every Raft message to and from one manager, read-index messages included (its
    connections stay up, as when a link drops packets), until healed."""

    def __init__(self, sim: SimNode):
        self.transport = sim.node.manager.store._raft._SyncObj__transport
        self.deliver = self.transport._onMessageReceivedCallback

    def cut(self) -> None:
        self.transport.send = lambda node, message: False
        self.transport._onMessageReceivedCallback = lambda node, message: None

    def heal(self) -> None:
        del self.transport.send
        self.transport._onMessageReceivedCallback = self.deliver


def _stub(sim: SimNode) -> tuple[grpc.aio.Channel, control_pb2_grpc.ControlStub]:
    s = sim.node.state
    channel = tls.secure_channel(sim.node.membership.advertise_addr, s.ca_cert(), s.key(), s.cert())
    return channel, control_pb2_grpc.ControlStub(channel)


def _label(node_id: str, value: int) -> control_pb2.UpdateNodeRequest:
    return control_pb2.UpdateNodeRequest(node=node_id, labels_add={"seq": str(value)})


def _followers(swarm) -> list[SimNode]:
    return [sim for sim in swarm.nodes.values() if sim.manager and sim is not swarm.leader()]


@swarm_test(managers=3)
async def test_a_write_acknowledged_by_the_leader_is_seen_at_once_through_every_follower(swarm):
    leader = swarm.leader()
    target = swarm.nodes["m1"].id
    channels = {sim.hostname: _stub(sim) for sim in swarm.nodes.values() if sim.manager}
    try:
        write = channels[leader.hostname][1]
        readers = [channels[sim.hostname][1] for sim in _followers(swarm)]
        assert len(readers) == 2
        stale = []
        for value in range(ROUNDS):
            await write.UpdateNode(_label(target, value))
            for reader in readers:
                seen = (await reader.GetNode(control_pb2.GetNodeRequest(node=target))).node.spec.labels["seq"]
                if seen != str(value):
                    stale.append((value, seen))
        assert stale == [], f"followers answered stale reads (written, seen): {stale[:10]}"
    finally:
        for channel, _ in channels.values():
            await channel.close()


@swarm_test(managers=3)
async def test_a_follower_cut_off_from_the_leader_refuses_reads_instead_of_answering_stale(swarm):
    leader, follower = swarm.leader(), _followers(swarm)[0]
    target = swarm.nodes["m1"].id
    timings = swarm.settings.raft
    (write_channel, write), (read_channel, read) = _stub(leader), _stub(follower)
    cut = RaftCut(follower)
    try:
        await write.UpdateNode(_label(target, 1))
        cut.cut()
        await write.UpdateNode(_label(target, 2))   # committed by the leader and the other follower
        for _ in range(3):
            started = time.monotonic()
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await read.GetNode(control_pb2.GetNodeRequest(node=target))
            took = time.monotonic() - started
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE, refused.value.details()
            assert took < timings.read_timeout + READ_GRACE + 1.0, f"refused only after {took:.1f}s"
        cut.heal()
        seen = await swarm.until(lambda: _label_via(read, target), what="reads through the healed follower")
        assert seen == "2"
    finally:
        await write_channel.close()
        await read_channel.close()


async def _label_via(stub, node_id: str) -> str | None:
    try:
        return (await stub.GetNode(control_pb2.GetNodeRequest(node=node_id))).node.spec.labels["seq"]
    except grpc.aio.AioRpcError:
        return None


def _short_writes():
    settings = fast_settings()
    raft = settings.raft
    settings.raft = RaftTimings(election_min=raft.election_min, election_max=raft.election_max,
                                leader_fallback=raft.leader_fallback, connection_timeout=raft.connection_timeout,
                                write_timeout=1.5)
    return settings


@swarm_test(managers=3, settings=_short_writes())
async def test_a_write_whose_commit_is_not_seen_says_it_may_have_been_applied(swarm):
    """The leader is cut off right after the call passed its read barrier: the write is
    proposed, never seen committed."""
    leader = swarm.leader()
    store = leader.node.manager.store
    cut = RaftCut(leader)
    barrier = store.read_barrier

    async def barrier_then_cut():
        await barrier()
        cut.cut()
    store.read_barrier = barrier_then_cut
    channel, control = _stub(leader)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await control.UpdateNode(_label(swarm.nodes["m2"].id, 7))
    finally:
        cut.heal()
        store.read_barrier = barrier
        await channel.close()
    error = from_rpc_error(failed.value, write=True)
    assert error.outcome is Outcome.UNKNOWN, failed.value
    assert MAYBE_APPLIED in str(error)


@swarm_test(managers=3)
async def test_a_write_without_a_leader_says_it_was_not_applied(swarm):
    """Both followers stopped: the leader loses its quorum, and a write refused before it was
    proposed says so."""
    leader = swarm.leader()
    for sim in _followers(swarm):
        await swarm.stop(sim.hostname)
    channel, control = _stub(leader)
    try:
        async def refused():
            try:
                await control.UpdateNode(_label(leader.id, 1))
            except grpc.aio.AioRpcError as exc:
                return exc if exc.code() == grpc.StatusCode.UNAVAILABLE else None
            return None
        failed = await swarm.until(refused, what="a write refused without quorum")
    finally:
        await channel.close()
    error = from_rpc_error(failed, write=True)
    assert error.outcome is Outcome.NOT_APPLIED
    assert NOT_APPLIED in str(error), str(error)
