"""`covey secret / config` and the `--secret` / `--config` flags of `covey service`: what they
send, and what `inspect` shows (never a secret's data)."""
import argparse
import io

import pytest

from covey.cli import secret, service
from covey.cli.serviceflags import build_spec, edit_spec
from covey.cli.serviceview import pretty_service
from covey.errors import InvalidArgument
from proto import objects_pb2 as pb
from proto import specs_pb2 as specs


def parse(*argv):
    parser = argparse.ArgumentParser()
    subparsers = parser.add_subparsers()
    service.add_parser(subparsers)
    secret.add_parser(subparsers)
    return parser.parse_args(argv)


def test_short_and_long_secret_and_config_flags():
    s = build_spec(parse("service", "create", "--name", "web", "--secret", "db_pass",
                         "--secret", "source=tls_key,target=server.key,uid=33,gid=33,mode=0400",
                         "--config", "src=nginx_conf,target=/etc/nginx/nginx.conf,mode=0440", "nginx:1"))
    short, long = s.task.container.secrets
    assert (short.secret_name, short.file.name, short.file.mode) == ("db_pass", "", 0)  # the managers' defaults
    assert (long.secret_name, long.file.name, long.file.uid, long.file.gid, long.file.mode) == (
        "tls_key", "server.key", "33", "33", 0o400)
    [conf] = s.task.container.configs
    assert (conf.config_name, conf.file.name, conf.file.mode) == ("nginx_conf", "/etc/nginx/nginx.conf", 0o440)


@pytest.mark.parametrize("flag, message", [
    ("source=x,mode=rw", "mode 'rw' is not an octal number"),
    ("target=/x", "source=NAME is required"),
    ("source=x,owner=1", "unknown field 'owner'"),
    ("source=x,uid=www", "uid must be a number"),
])
def test_bad_secret_flags_are_refused_naming_the_problem(flag, message):
    with pytest.raises(InvalidArgument, match=message):
        build_spec(parse("service", "create", "--name", "web", "--secret", flag, "img:v1"))


def test_update_adds_and_removes_by_name_or_id():
    current = specs.ServiceSpec(name="web")
    current.task.container.secrets.add(secret_name="old", secret_id="id-old")
    current.task.container.secrets.add(secret_name="keep", secret_id="id-keep")
    current.task.container.configs.add(config_name="conf", config_id="id-conf")
    new = edit_spec(parse("service", "update", "--secret-rm", "id-old", "--secret-add", "new",
                          "--config-rm", "conf", "web"), current)
    assert [r.secret_name for r in new.task.container.secrets] == ["keep", "new"]
    assert not new.task.container.configs


def test_create_reads_the_file_or_stdin_and_refuses_empty_data(tmp_path, monkeypatch):
    path = tmp_path / "pw"
    path.write_bytes(b"s3cret\n")
    assert secret.read_data(str(path)) == b"s3cret\n"
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"from stdin")))
    assert secret.read_data("-") == b"from stdin"
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(InvalidArgument, match="is empty"):
        secret.read_data(str(tmp_path / "empty"))
    with pytest.raises(InvalidArgument, match="cannot read .*missing: No such file"):
        secret.read_data(str(tmp_path / "missing"))


def test_inspect_shows_a_configs_data_in_base64_and_never_a_secrets():
    kinds = secret.KINDS
    config = pb.Config(id="c1", spec=specs.ConfigSpec(name="conf", data=b"port=80"))
    assert secret.docker_view(kinds["config"], config)["Spec"]["Data"] == "cG9ydD04MA=="
    leaked = pb.Secret(id="s1", spec=specs.SecretSpec(name="pw", data=b"should never come"))
    view = secret.docker_view(kinds["secret"], leaked)
    assert "Data" not in view["Spec"] and view["Spec"]["Name"] == "pw"


def test_pretty_inspect_names_the_secrets_and_configs():
    service = pb.Service(id="s1", spec=specs.ServiceSpec(name="web"))
    service.spec.task.container.image = "img:v1"
    service.spec.task.container.secrets.add(secret_name="db_pass", file=specs.FileTarget(name="db"))
    service.spec.task.container.configs.add(config_name="conf", file=specs.FileTarget(name="/etc/app.conf"))
    text = pretty_service(service, [])
    assert "Secrets:\n Target:        db\n  Source:       db_pass" in text
    assert "Configs:\n Target:        /etc/app.conf\n  Source:       conf" in text
