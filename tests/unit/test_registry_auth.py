"""--with-registry-auth and `covey login`: which registry an image comes from, the credentials
file docker login writes, what the CLI sends, what the API shows and what the dispatcher sends."""
import argparse
import base64
import io
import json
import os

import pytest

from covey import registryauth
from covey.cli import login, service
from covey.errors import InvalidArgument
from manager.controlapi.services import blanked
from manager.dispatcher.registryauth import attach
from proto import control_pb2, dispatcher_pb2
from proto import objects_pb2 as pb
from tests.support.builders import task

AUTH = pb.RegistryAuth(registry="reg.example:5000", username="alice", password="s3cret")


@pytest.mark.parametrize("image, registry", [
    ("busybox", "docker.io"), ("library/busybox:1", "docker.io"), ("reg.example:5000/app:v1", "reg.example:5000"),
    ("localhost/app", "localhost"), ("Reg.Example/app@sha256:" + "a" * 64, "reg.example"), ("user/app", "docker.io"),
])
def test_registry_of_an_image_as_docker_reads_it(image, registry):
    assert registryauth.registry_of(image) == registry


def test_credentials_read_as_docker_login_wrote_them(tmp_path):
    path = tmp_path / "config.json"
    token = base64.b64encode(b"bob:pa:ss").decode()
    path.write_text(json.dumps({"auths": {"https://index.docker.io/v1/": {"auth": token},
                                          "http://reg.example:5000/v2/": {"auth": token}},
                                "credsStore": "ignored"}))
    hub = registryauth.credentials("docker.io", path)
    assert (hub.registry, hub.username, hub.password) == ("docker.io", "bob", "pa:ss")
    assert registryauth.credentials("reg.example:5000", path).username == "bob"
    assert registryauth.credentials("other:5000", path) is None
    assert registryauth.credentials("docker.io", tmp_path / "absent.json") is None


def test_broken_credentials_are_named(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"auths": {"reg:1": {"auth": "!!notbase64"}}}))
    with pytest.raises(InvalidArgument, match=r"credentials for reg:1 in .* are not base64 of user:password"):
        registryauth.credentials("reg:1", path)
    path.write_text("{")
    with pytest.raises(InvalidArgument, match="cannot read the registry credentials"):
        registryauth.credentials("reg:1", path)


def test_login_writes_docker_s_file_privately_and_keeps_the_rest(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"auths": {"http://reg:1": {"auth": "eDp5"}}, "x": 1}))
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret\n"))
    args = argparse.Namespace(username="alice", password_stdin=True, server="http://reg:1/")
    assert login.login_registry(None, args) == 0
    doc = json.loads((tmp_path / "config.json").read_text())
    assert doc == {"auths": {"reg:1": {"auth": base64.b64encode(b"alice:s3cret").decode()}}, "x": 1}
    assert os.stat(tmp_path / "config.json").st_mode & 0o777 == 0o600
    assert "Credentials for reg:1 saved" in capsys.readouterr().out
    with pytest.raises(InvalidArgument, match="--password-stdin"):
        login.login_registry(None, argparse.Namespace(username="a", password_stdin=False, server="reg:1"))


def test_with_registry_auth_sends_the_image_s_registry_credentials(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    registryauth.save("reg.example:5000", "alice", "s3cret")
    parser = argparse.ArgumentParser()
    service.add_parser(parser.add_subparsers())
    args = parser.parse_args(["service", "create", "--name", "p", "--with-registry-auth", "reg.example:5000/app"])
    request = control_pb2.CreateServiceRequest(spec=service.build_spec(args))
    service._with_registry_auth(args, request)
    assert (request.registry_auth.username, request.registry_auth.password) == ("alice", "s3cret")
    other = control_pb2.CreateServiceRequest(spec=request.spec)
    other.spec.task.container.image = "elsewhere:1/app"
    service._with_registry_auth(args, other)
    assert not other.HasField("registry_auth")
    assert "no credentials for registry elsewhere:1" in capsys.readouterr().err
    assert set(login.registry_auths_for(["reg.example:5000/a", "reg.example:5000/b", "x/y"])) == {
        "reg.example:5000"}
    assert registryauth.for_image({"reg.example:5000": AUTH}, "reg.example:5000/a:1") == AUTH


def test_the_api_never_shows_the_credentials():
    stored = pb.Service(id="s1", registry_auth=AUTH)
    shown = blanked(stored)
    assert not shown.HasField("registry_auth") and stored.HasField("registry_auth")


class _Services:
    def __init__(self, *services):
        self._by_id = {s.id: s for s in services}

    def get(self, service_id):
        return self._by_id.get(service_id)


class _Store:
    def __init__(self, *services):
        self.services = _Services(*services)


def test_the_dispatcher_sends_them_only_with_tasks_still_to_pull():
    store = _Store(pb.Service(id="s1", registry_auth=AUTH), pb.Service(id="s2"))
    to_pull = task("t1", 1, service_id="s1", state=pb.ASSIGNED)
    running = task("t2", 2, service_id="s1", state=pb.RUNNING)
    stopping = task("t3", 3, service_id="s1", state=pb.ASSIGNED, desired=pb.SHUTDOWN)
    public = task("t4", 1, service_id="s2", state=pb.ASSIGNED)
    message = dispatcher_pb2.AssignmentsMessage(updated=[to_pull, running, stopping, public])
    attach(store, message)
    assert dict(message.registry_auths) == {"t1": AUTH}
