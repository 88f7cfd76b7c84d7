"""coveyd/recovery.py restore_plan: the writes that make an empty Raft the swarm of a backup,
with a new node (new ID, new address) its only manager."""
from coveyd.nodestate import Membership
from coveyd.recovery import NOT_REJOINED, restore_plan
from proto import backup_pb2, store_pb2
from proto import objects_pb2 as pb
from tests.support.builders import node, service, task

NOW = 1_700_000_000 * 10**9
ME = Membership(cluster_id="c1", node_id="new1", role=pb.MANAGER, listen_addr="0.0.0.0:4242",
                advertise_addr="10.0.0.9:4242", raft_addr="10.0.0.9:4243", managers=["10.0.0.9:4242"])


def _backup() -> backup_pb2.Backup:
    backup = backup_pb2.Backup(format_version=1, raft_index=99)
    store = backup.store
    store.format_version = 2
    store.clusters.add(id="c1", removed_nodes=["gone-long-ago"], raft_key=b"k" * 32).join_tokens.worker = "SWMTKN-w"
    store.nodes.extend([node("m1", hostname="host1", role=pb.MANAGER), node("m2", hostname="host2", role=pb.MANAGER),
                        node("w1", hostname="host3")])
    store.nodes[0].manager_status.api_addr = "10.0.0.1:4242"
    store.services.append(service("s1", replicas=2))
    store.tasks.extend([task("t1", 1, node_id="m1"), task("t2", 2, node_id="w1")])
    store.networks.add(id="net1").spec.name = "front"
    return backup


def down(old: pb.Node) -> pb.Node:
    """An old node as restored: Down until it joins again, the rest as it was."""
    node = pb.Node()
    node.CopyFrom(old)
    node.status.state, node.status.message = pb.NodeStatus.DOWN, NOT_REJOINED
    return node


def _objects(actions: list[store_pb2.StoreAction]) -> list:
    assert {a.kind for a in actions} == {store_pb2.StoreAction.CREATE}
    return [getattr(a, a.WhichOneof("object")) for a in actions]


def test_every_object_of_the_backup_but_the_old_managers_is_written_as_it_was():
    backup = _backup()
    cluster, actions = restore_plan(backup, ME, "host9", NOW)
    written = {(type(o).__name__, o.id): o for o in _objects(actions)}
    kept = [*backup.store.networks, *backup.store.services, *backup.store.tasks, down(backup.store.nodes[2])]
    for obj in kept:
        assert written.pop((type(obj).__name__, obj.id)) == obj, obj.id
    assert sorted(written) == [("Cluster", "c1"), ("Node", "new1")]
    assert backup == _backup(), "the plan changed the backup it was given"


def test_the_old_managers_are_denied_and_the_cluster_is_written_last():
    cluster, actions = restore_plan(_backup(), ME, "host9", NOW)
    assert _objects(actions)[-1] == cluster
    assert list(cluster.removed_nodes) == ["gone-long-ago", "m1", "m2"]
    expected = pb.Cluster()
    expected.CopyFrom(_backup().store.clusters[0])
    del expected.removed_nodes[:]
    del cluster.removed_nodes[:]
    assert cluster == expected, "tokens, keys and settings as in the backup"


def test_this_node_is_the_one_manager_on_its_new_address():
    _, actions = restore_plan(_backup(), ME, "host9", NOW)
    managers = [o for o in _objects(actions) if isinstance(o, pb.Node) and o.role == pb.MANAGER]
    assert len(managers) == 1
    me = managers[0]
    assert (me.id, me.description.hostname, me.spec.desired_role) == ("new1", "host9", pb.MANAGER)
    assert (me.manager_status.api_addr, me.manager_status.raft_addr) == ("10.0.0.9:4242", "10.0.0.9:4243")
    assert me.meta.created_at_ns == NOW
