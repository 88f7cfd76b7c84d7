"""The agent's secrets and configs: held in memory from the assignments, and turned into the
executor's files at Docker's default paths and modes."""
import pytest

from proto import dispatcher_pb2
from proto import objects_pb2 as pb
from proto import specs_pb2 as specs
from worker.executor import ExecutorError
from worker.secrets import SecretStore

COMPLETE, INCREMENTAL = dispatcher_pb2.AssignmentsMessage.COMPLETE, dispatcher_pb2.AssignmentsMessage.INCREMENTAL


def secret(secret_id: str, name: str, data: bytes) -> pb.Secret:
    return pb.Secret(id=secret_id, spec=specs.SecretSpec(name=name, data=data))


def task_using(*secrets: tuple[str, str, specs.FileTarget], configs=()) -> pb.Task:
    task = pb.Task(id="t1")
    for secret_id, name, file in secrets:
        task.spec.container.secrets.add(secret_id=secret_id, secret_name=name, file=file)
    for config_id, name, file in configs:
        task.spec.container.configs.add(config_id=config_id, config_name=name, file=file)
    return task


def test_files_at_docker_paths_with_owner_and_mode():
    store = SecretStore()
    store.apply(dispatcher_pb2.AssignmentsMessage(
        type=COMPLETE, secrets=[secret("s1", "db", b"pw"), secret("s2", "tls", b"key")],
        configs=[pb.Config(id="c1", spec=specs.ConfigSpec(name="site", data=b"<html>"))]))
    task = task_using(("s1", "db", specs.FileTarget(name="db", uid="0", gid="0", mode=0o444)),
                      ("s2", "tls", specs.FileTarget(name="/etc/ssl/key.pem", uid="33", gid="34", mode=0o400)),
                      configs=[("c1", "site", specs.FileTarget(name="srv/index.html", mode=0o440))])
    files = store.files(task)
    assert [(f.target, f.uid, f.gid, f.mode, f.data) for f in files] == [
        ("/run/secrets/db", 0, 0, 0o444, b"pw"), ("/etc/ssl/key.pem", 33, 34, 0o400, b"key"),
        ("/srv/index.html", 0, 0, 0o440, b"<html>")]


def test_removed_and_replaced_secrets_are_forgotten():
    store = SecretStore()
    store.apply(dispatcher_pb2.AssignmentsMessage(type=COMPLETE, secrets=[secret("s1", "db", b"pw")]))
    store.apply(dispatcher_pb2.AssignmentsMessage(type=INCREMENTAL, secrets=[secret("s2", "x", b"y")],
                                                  removed_secrets=["s1"]))
    assert store.held() == ({"s2"}, set())
    with pytest.raises(ExecutorError, match="secret db is not available on this node"):
        store.files(task_using(("s1", "db", specs.FileTarget(name="db"))))
    store.apply(dispatcher_pb2.AssignmentsMessage(type=COMPLETE))   # a new stream: only what it sends
    assert store.held() == (set(), set())
