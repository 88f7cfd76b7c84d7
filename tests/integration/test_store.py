"""The Raft store: batches are atomic, versions are checked, events reach the loop, state survives."""
import asyncio

import pytest

from covey.errors import Conflict
from manager.state import store as st
from manager.state.actions import create, delete, modify, update
from proto import objects_pb2 as pb
from proto import store_pb2
from tests.integration.inproc import free_port_pair
from tests.support import builders


async def _open(raft_dir, port):
    addr = f"127.0.0.1:{port}"
    store = st.Store(raft_dir, addr, [], b"k" * 32, addr, st.RaftTimings(), at_rest_key=b"r" * 32)
    await store.wait_ready(15)
    return store


def test_batches_versions_events_and_restart(tmp_path, run):
    port = free_port_pair()

    async def first_life():
        store = await _open(tmp_path, port)
        try:
            events = store.subscribe()
            a, b = pb.Node(id="a"), pb.Node(id="b")
            await store.write([create(a), create(b)])
            got = [await asyncio.wait_for(events.get(), 5) for _ in range(2)]
            assert [(type(e.obj), e.id, e.obj.meta.version) for e in got] == [(pb.Node, "a", 1), (pb.Node, "b", 1)]

            stale = store.nodes.get("a")
            fresh = store.nodes.get("a")
            fresh.spec.labels["x"] = "1"
            await store.write([update(fresh)])
            assert store.nodes.get("a").meta.version == 2

            # One stale action fails the whole batch: b is not deleted either.
            stale.spec.labels["x"] = "stale"
            with pytest.raises(Conflict, match="changed by another writer"):
                await store.write([delete(store.nodes.get("b")), update(stale)])
            assert store.nodes.get("b") is not None
            assert store.nodes.get("a").spec.labels["x"] == "1"

            with pytest.raises(Conflict, match="already exists"):
                await store.write([create(pb.Node(id="b"))])

            # modify() retries a read-modify-write past a concurrent writer.
            async def bump(n):
                await modify(store, pb.Node, "a", lambda node: node.spec.labels.__setitem__(f"k{n}", "v"), 0)
            await asyncio.gather(*(bump(n) for n in range(5)))
            assert {f"k{n}" for n in range(5)} <= set(store.nodes.get("a").spec.labels)
        finally:
            await asyncio.to_thread(store.close)

    async def second_life():
        store = await _open(tmp_path, port)
        try:
            a = store.nodes.get("a")
            return a.spec.labels["x"], a.meta.version, sorted(n.id for n in store.nodes.list())
        finally:
            await asyncio.to_thread(store.close)

    run(first_life())
    label, version, ids = run(second_life())
    assert (label, ids) == ("1", ["a", "b"])
    assert version == 7  # created, one update, five modifies: nothing lost or doubled


def test_parsed_view_and_tasks_per_node_follow_writes_and_restart(tmp_path, run):
    """view() and tasks.on_node() are kept beside the Raft tables; after a restart they are rebuilt
    from the journal or snapshot, and they agree with list() at every step."""
    port = free_port_pair()

    def task(task_id, node_id=""):
        return builders.task(task_id, service_id="s", node_id=node_id)

    def placed(store):
        assert sorted(t.id for t in store.tasks.view()) == sorted(t.id for t in store.tasks.list())
        return {node: sorted(t.id for t in store.tasks.on_node(node)) for node in ("", "n1", "n2")}

    async def first_life():
        store = await _open(tmp_path, port)
        try:
            await store.write([create(task("t1")), create(task("t2", "n1")),
                               create(task("t3", "n1"))])
            before = placed(store)
            assigned = store.tasks.get("t1")
            assigned.node_id = "n2"
            await store.write([update(assigned), delete(store.tasks.get("t3"))])
            assert store.tasks.view()[0] is store.tasks.view()[0]  # the same objects, not copies
            return before, placed(store)
        finally:
            await asyncio.to_thread(store.close)

    async def second_life():
        store = await _open(tmp_path, port)
        try:
            return placed(store), store.tasks.get("t1").meta.version
        finally:
            await asyncio.to_thread(store.close)

    before, after = run(first_life())
    assert before == {"": ["t1"], "n1": ["t2", "t3"], "n2": []}
    assert after == {"": [], "n1": ["t2"], "n2": ["t1"]}
    restarted, version = run(second_life())
    assert restarted == after
    assert version == 2


def test_status_reports_of_many_nodes_share_raft_writes(tmp_path, run):
    """The dispatcher's StatusWriter: reports that come in together are committed in a few
    writes, not one each; a report that would move a state backwards, or names a task that is
    gone, is dropped; every caller returns once its reports are in the store."""
    from manager.dispatcher.status import StatusWriter

    async def scenario():
        store = await _open(tmp_path, free_port_pair())
        try:
            tasks = [pb.Task(id=f"t{i}", node_id=f"n{i}", status=pb.TaskStatus(state=pb.ASSIGNED))
                     for i in range(200)]
            await store.write([create(t) for t in tasks])
            writes = 0
            write = store.write

            async def counted(actions):
                nonlocal writes
                writes += 1
                return await write(actions)
            store.write = counted
            writer = StatusWriter(store)
            running = pb.TaskStatus(state=pb.RUNNING, message="started")
            await asyncio.gather(*(writer.submit({t.id: running}) for t in tasks),
                                 writer.submit({"gone": running}))
            concurrent_writes = writes
            await writer.submit({"t0": pb.TaskStatus(state=pb.PREPARING)})  # backwards: dropped
            return concurrent_writes, writes, store.tasks.list()
        finally:
            await asyncio.to_thread(store.close)

    concurrent_writes, writes, stored = run(scenario())
    assert {t.status.state for t in stored} == {pb.RUNNING}
    assert len(stored) == 200
    assert 1 <= concurrent_writes <= 3, f"{concurrent_writes} writes for 200 reports"
    assert writes == concurrent_writes  # the backwards report wrote nothing


def test_status_writer_fails_the_round_when_its_retries_run_out(run):
    """A round that conflicts on every attempt must raise, not report success: the agent
    keeps the reports of a failed round and sends them again."""
    from manager.dispatcher.status import STATUS_WRITE_ATTEMPTS, StatusWriter

    class AssignedTasks:
        def peek(self, task_id):
            return pb.Task(id=task_id, status=pb.TaskStatus(state=pb.ASSIGNED))

    class AlwaysConflicting:
        writes = 0
        tasks = AssignedTasks()

        async def write(self, actions):
            self.writes += 1
            raise Conflict("task t1 was changed by another writer")

    store = AlwaysConflicting()
    with pytest.raises(Conflict):
        run(StatusWriter(store).submit({"t1": pb.TaskStatus(state=pb.RUNNING)}))
    assert store.writes == STATUS_WRITE_ATTEMPTS


def test_status_writer_returns_at_once_for_an_empty_report(run):
    """A report with no updates has nothing to commit: it must not wait for a round that no
    writer will ever settle."""
    from manager.dispatcher.status import StatusWriter

    class Untouched:
        async def write(self, actions):
            raise AssertionError("nothing to write")

    run(StatusWriter(Untouched()).submit({}), timeout=5)


def test_format_1_entries_in_the_raft_log_apply_and_replay(tmp_path, run):
    """A data dir whose log holds format 1 entries (table name + object bytes) loads: each
    is migrated when applied, the first time and when the log is replayed at restart."""
    port = free_port_pair()
    old = store_pb2.StoreBatchV1(actions=[store_pb2.StoreActionV1(
        kind=store_pb2.StoreAction.CREATE, table="node", id="old",
        object=pb.Node(id="old", spec=pb.NodeSpec(labels={"from": "v1"})).SerializeToString())])

    async def life(write_old):
        store = await _open(tmp_path, port)
        try:
            if write_old:
                outcome = await asyncio.to_thread(store._state.apply_batch, old.SerializeToString(),
                                                  sync=True, timeout=10)
                assert outcome == ("ok", None)
            node = store.nodes.get("old")
            return node.spec.labels["from"], node.meta.version
        finally:
            await asyncio.to_thread(store.close)

    assert run(life(True)) == ("v1", 1)
    assert run(life(False)) == ("v1", 1)
