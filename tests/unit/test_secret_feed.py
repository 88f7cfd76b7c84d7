"""The dispatcher's secret feed: a node gets a secret with the first of its tasks that uses
it, keeps it while one of them is unfinished, and is told to drop it with the last."""
from typing import cast

from manager.dispatcher.secretfeed import SecretFeed
from manager.state import store as st
from proto import dispatcher_pb2
from proto import objects_pb2 as pb
from proto import specs_pb2 as specs


class Objects:
    def __init__(self, *objs):
        self._objs = {o.id: o for o in objs}

    def get(self, obj_id):
        return self._objs.get(obj_id)


class FakeStore:
    secrets = Objects(pb.Secret(id="s1", spec=specs.SecretSpec(name="pw", data=b"x")))
    configs = Objects(pb.Config(id="c1", spec=specs.ConfigSpec(name="conf", data=b"y")))


def task(task_id: str, state: int = pb.RUNNING, secret: str = "s1", config: str = "") -> pb.Task:
    t = pb.Task(id=task_id, status=pb.TaskStatus(state=state))
    t.spec.container.secrets.add(secret_id=secret, secret_name="pw")
    if config:
        t.spec.container.configs.add(config_id=config, config_name="conf")
    return t


def sent(feed: SecretFeed, updated=(), removed=()) -> dispatcher_pb2.AssignmentsMessage:
    message = dispatcher_pb2.AssignmentsMessage()
    feed.track(updated, removed)
    feed.add_to(message)
    return message


def test_sent_once_with_the_first_task_and_removed_with_the_last():
    feed = SecretFeed(cast(st.Store, FakeStore()))
    first = sent(feed, [task("t1", state=pb.ASSIGNED, config="c1")])
    assert [s.spec.data for s in first.secrets] == [b"x"] and [c.id for c in first.configs] == ["c1"]
    second = sent(feed, [task("t2")])
    assert not second.secrets and not second.removed_secrets     # the node has it already
    finished = sent(feed, [task("t1", state=pb.COMPLETE, config="c1")])
    assert list(finished.removed_configs) == ["c1"] and not finished.removed_secrets   # t2 still uses s1
    last = sent(feed, removed=["t2"])
    assert list(last.removed_secrets) == ["s1"]
    assert feed.held == set()


def test_a_secret_removed_from_the_store_is_not_sent():
    feed = SecretFeed(cast(st.Store, FakeStore()))
    message = sent(feed, [task("t1", secret="gone")])
    assert not message.secrets and feed.held == set()
