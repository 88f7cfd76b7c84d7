"""Service logs through the control API of a follower manager: gathered by the leader from
every node (simulated executor), merged by time; a node cut off is named, never waited for."""
from dataclasses import replace

import grpc
import pytest

from proto import control_pb2
from tests.integration.simkit import fast_settings
from tests.integration.swarmtest import swarm_test
from tests.support.builders import service_spec


async def collect(swarm, name: str, **kwargs) -> tuple[list[control_pb2.ServiceLogLine], list[str]]:
    lines, warnings = [], []
    async for message in swarm.control.ServiceLogs(control_pb2.ServiceLogsRequest(service=name, tail=-1, **kwargs)):
        lines += message.lines
        warnings += message.warnings
    return lines, warnings


@swarm_test(managers=2, workers=3, drain_managers=True, settings=replace(fast_settings(), log_gather_timeout=1.0))
async def test_logs_through_a_follower_merged_then_a_lost_node_is_named(swarm):
    await swarm.create(service_spec("web", replicas=3))
    await swarm.until(lambda: swarm.converged("web", 3), what="3 running")
    follower = next(h for h in ("m1", "m2") if swarm.nodes[h] is not swarm.leader())
    await swarm.use(follower)

    lines, warnings = await collect(swarm, "web")
    assert warnings == []
    assert sorted(line.node_hostname for line in lines) == ["w1", "w2", "w3"]
    assert all("started" in line.line and line.slot in (1, 2, 3) for line in lines)
    assert [line.time for line in lines] == sorted(line.time for line in lines)

    await swarm.partition("w3")  # its agent is gone, its container "runs" on
    lines, warnings = await collect(swarm, "web")
    assert "w3" not in {line.node_hostname for line in lines}
    assert any("node w3" in w for w in warnings), warnings

    with pytest.raises(grpc.aio.AioRpcError) as error:
        await collect(swarm, "nosuch")
    assert error.value.code() == grpc.StatusCode.NOT_FOUND and "nosuch" in error.value.details()
