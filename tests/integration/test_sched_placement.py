"""The scheduler's rules end to end (real managers and agents, simulated executor): constraints
on labels, role and hostname; spread over a label; max replicas per node; reservations; the
explanation kept on a task that cannot be placed, and its placement once a label or a node
makes room."""
import os

from proto import objects_pb2 as pb
from tests.integration.swarmtest import swarm_test
from tests.support.builders import service_spec

CPUS = os.cpu_count() or 1                                    # what describe_node reports
MEMORY = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


async def pending(swarm, name, count):
    """The service's tasks that wait for a node, once `count` of them carry an explanation."""
    waiting = [t for t in await swarm.live(name) if t.status.state == pb.PENDING and t.explanation.filters]
    return waiting if len(waiting) == count else None


async def running(swarm, name, count):
    """Exactly `count` tasks of the service RUNNING (others may be pending)."""
    tasks = [t for t in await swarm.live(name) if t.status.state == pb.RUNNING]
    return tasks if len(tasks) == count else None


def filters(task) -> dict:
    return {f.name: (f.nodes_excluded, f.reason) for f in task.explanation.filters}


@swarm_test(workers=3)
async def test_constraints_on_labels_role_and_hostname(swarm):
    await swarm.update_node("w1", labels={"zone": "a"})
    await swarm.update_node("w2", labels={"zone": "b"})
    cases = {
        "in-a": (["node.labels.zone==a"], 2),
        "not-a": (["node.labels.zone!=a"], 6),      # w3 has no zone: != passes, as Docker
        "managers": (["node.role==manager"], 2),
        "workers-b": (["node.role==worker", "node.labels.zone==b"], 2),
        "on-w3": (["node.hostname==w3"], 2),
        "not-w3": (["node.hostname!=w3", "node.role!=manager"], 4),
    }
    for name, (constraints, replicas) in cases.items():
        await swarm.create(service_spec(name, replicas=replicas, constraints=constraints))
    placed = {name: swarm.by_host(await swarm.until(lambda n=name, c=c: swarm.converged(n, c[1]),
                                                    what=f"{name} running"))
              for name, c in cases.items()}
    assert placed == {"in-a": {"w1": 2}, "not-a": {"m1": 2, "w2": 2, "w3": 2}, "managers": {"m1": 2},
                      "workers-b": {"w2": 2}, "on-w3": {"w3": 2}, "not-w3": {"w1": 2, "w2": 2}}


@swarm_test(workers=2)
async def test_unplaceable_task_is_explained_and_placed_when_a_label_arrives(swarm):
    await swarm.update_node("w1", labels={"disk": "hdd"})
    await swarm.create(service_spec("db", constraints=["node.labels.disk==ssd"]))
    task = (await swarm.until(lambda: pending(swarm, "db", 1), what="db explained"))[0]
    assert not task.node_id and not any(sim.running("db") for sim in swarm.nodes.values())

    await swarm.update_node("w2", labels={"disk": "ssd"})
    placed = await swarm.until(lambda: swarm.converged("db", 1), what="db running on w2")
    task, placed, placed_id = task, swarm.by_host(placed), placed[0].id
    assert filters(task) == {"constraint node.labels.disk==ssd":
                             (3, "2 nodes have no such label, 1 node has disk=hdd")}
    assert task.status.err == task.explanation.text
    assert task.explanation.text.startswith("no suitable node among 3 nodes: constraint node.labels.disk==ssd")
    assert placed == {"w2": 1} and placed_id == task.id          # the same task, now placed


@swarm_test(workers=1)
async def test_reservations_fill_nodes_explain_and_a_new_node_takes_the_rest(swarm):
    cpus = CPUS * 0.6                     # one such task per node
    memory = int(MEMORY * 0.6)

    await swarm.create(service_spec("cpu", replicas=3, cpus=cpus))
    await swarm.create(service_spec("mem", replicas=3, memory=memory))
    cpu_wait = (await swarm.until(lambda: pending(swarm, "cpu", 1), what="cpu: 1 pending"))[0]
    mem_wait = (await swarm.until(lambda: pending(swarm, "mem", 1), what="mem: 1 pending"))[0]
    cpu_run = await swarm.until(lambda: running(swarm, "cpu", 2), what="cpu: 2 running")
    mem_run = await swarm.until(lambda: running(swarm, "mem", 2), what="mem: 2 running")
    spread = swarm.by_host(cpu_run), swarm.by_host(mem_run)

    await swarm.join("w2")                      # a node with room: both pending tasks go there
    cpu_all = await swarm.until(lambda: swarm.converged("cpu", 3), what="cpu: 3 running")
    mem_all = await swarm.until(lambda: swarm.converged("mem", 3), what="mem: 3 running")
    cpu_all, mem_all = swarm.by_host(cpu_all), swarm.by_host(mem_all)
    assert spread == ({"m1": 1, "w1": 1}, {"m1": 1, "w1": 1})
    (excluded, reason), = filters(cpu_wait).values()
    assert list(filters(cpu_wait)) == ["cpu"] and excluded == 2
    assert reason.startswith(f"needs {cpus:g} CPUs, largest free is ")
    assert list(filters(mem_wait)) == ["memory"] and filters(mem_wait)["memory"][0] == 2
    assert filters(mem_wait)["memory"][1].startswith("needs ")
    assert cpu_all == mem_all == {"m1": 1, "w1": 1, "w2": 1}


@swarm_test(workers=4, drain_managers=True)
async def test_placement_preference_spreads_over_label_values(swarm):
    await swarm.update_node("w1", labels={"zone": "a"})
    await swarm.update_node("w2", labels={"zone": "b"})
    await swarm.update_node("w3", labels={"zone": "b"})
    # w4 has no zone: the nodes without the label are a group of their own
    await swarm.create(service_spec("web", replicas=6, spread=["zone"]))
    tasks = await swarm.until(lambda: swarm.converged("web", 6), what="6 running")
    hosts = swarm.by_host(tasks)
    zones = {"w1": "a", "w2": "b", "w3": "b", "w4": None}
    per_zone = {}
    for host, n in hosts.items():
        per_zone[zones[host]] = per_zone.get(zones[host], 0) + n
    assert per_zone == {"a": 2, "b": 2, None: 2}             # plain spread would give b 3 or 4
    assert hosts["w1"] == 2 and hosts["w4"] == 2 and hosts["w2"] == hosts["w3"] == 1


@swarm_test(workers=2)
async def test_max_replicas_per_node(swarm):
    await swarm.create(service_spec("one-each", replicas=4, max_per_node=1))
    waiting = (await swarm.until(lambda: pending(swarm, "one-each", 1), what="one waiting"))[0]
    three = await swarm.until(lambda: running(swarm, "one-each", 3), what="3 running")
    assert swarm.by_host(three) == {"m1": 1, "w1": 1, "w2": 1}
    await swarm.join("w3")                       # room for the 4th
    four = await swarm.until(lambda: swarm.converged("one-each", 4), what="4 running")
    assert swarm.by_host(four) == {"m1": 1, "w1": 1, "w2": 1, "w3": 1}
    assert waiting.id in {t.id for t in four}
    assert filters(waiting) == {"max replicas per node (1)": (3, "m1, w1 and w2 already run 1")}


@swarm_test(workers=3)
async def test_global_service_runs_only_on_nodes_meeting_its_constraints(swarm):
    """As Docker: a global service's tasks go to the nodes that meet its constraints, and only
    to those (no task waits forever on a node that does not: the service converges)."""
    await swarm.update_node("w2", labels={"gpu": "yes"})
    await swarm.create(service_spec("gpu-agent", replicas=None, constraints=["node.labels.gpu==yes"]))
    one = await swarm.until(lambda: running(swarm, "gpu-agent", 1), what="gpu-agent on w2")
    assert swarm.by_host(one) == {"w2": 1}
    await swarm.update_node("w3", labels={"gpu": "yes"})
    two = await swarm.until(lambda: running(swarm, "gpu-agent", 2), what="gpu-agent on w3 too")
    assert swarm.by_host(two) == swarm.containers("gpu-agent") == {"w2": 1, "w3": 1}
    live = await swarm.live("gpu-agent")
    states = {swarm.hostname_of(t.node_id): pb.TaskState.Name(t.status.state) for t in live}
    assert states == {"w2": "RUNNING", "w3": "RUNNING"}


@swarm_test(workers=1)
async def test_scaling_down_frees_the_reservations_of_the_removed_tasks(swarm):
    """A task told to go (scale down) stops holding its node's CPU once it has stopped: scaling
    back up places the new task on that node again."""
    cpus = CPUS * 0.6                     # one such task per node

    await swarm.create(service_spec("cpu", replicas=2, cpus=cpus))
    two = await swarm.until(lambda: swarm.converged("cpu", 2), what="2 running")
    assert swarm.by_host(two) == {"m1": 1, "w1": 1}
    await swarm.scale("cpu", 1)
    await swarm.until(lambda: swarm.converged("cpu", 1), what="1 running, the other stopped")
    await swarm.scale("cpu", 2)
    again = await swarm.until(lambda: swarm.converged("cpu", 2), timeout=10, what="2 running again")
    assert swarm.by_host(again) == {"m1": 1, "w1": 1}
