"""Recovery: a surviving manager forces a new one-manager swarm and keeps the whole state."""
from proto import control_pb2, local_pb2
from proto import objects_pb2 as pb
from tests.integration.swarmtest import swarm_test
from tests.support.builders import service_spec


@swarm_test(managers=3, workers=1, drain_managers=True)
async def test_force_new_cluster_keeps_services_and_tasks(swarm):
    await swarm.create(service_spec("web", replicas=2))
    await swarm.until(lambda: swarm.converged("web", 2), what="web: 2 running")
    running = {t.id for t in await swarm.live("web")}
    networks = (await swarm.control.ListNetworks(control_pb2.ListNetworksRequest())).networks
    await swarm.stop("m2")
    await swarm.stop("m3")                      # quorum lost: m1 alone cannot write

    await swarm.nodes["m1"].node.init(local_pb2.SwarmInitRequest(force_new_cluster=True))
    await swarm.use("m1")

    assert (await swarm.get("web")).spec.name == "web"
    await swarm.until(lambda: swarm.converged("web", 2), what="web: 2 running after the new cluster")
    assert {t.id for t in await swarm.live("web")} == running  # the same tasks, untouched on w1
    assert await swarm.node("m2") is None and await swarm.node("m3") is None, "the lost managers are removed"
    assert (await swarm.node("m1")).role == pb.MANAGER
    kept = (await swarm.control.ListNetworks(control_pb2.ListNetworksRequest())).networks
    assert [(n.id, n.spec.ingress) for n in kept] == [(n.id, True) for n in networks]  # the same ingress
