"""Secrets and configs through the Control API of in-process swarms: the API never answers with
a secret's data, names and sizes are checked, a used one cannot be removed (the error names
the services), services store resolved references, and the dispatcher gives a secret only to
the nodes whose tasks use it, removing it with the last of them."""
from proto import control_pb2
from proto import objects_pb2 as pb
from proto import specs_pb2 as specs
from tests.integration.swarmtest import swarm_test
from tests.integration.test_networks import refused
from tests.support.builders import service_spec

DATA = b"hunter2-the-secret-bytes"


async def create_secret(swarm, name: str, data: bytes = DATA, **labels) -> pb.Secret:
    spec = specs.SecretSpec(name=name, data=data, labels=labels)
    return (await swarm.control.CreateSecret(control_pb2.CreateSecretRequest(spec=spec))).secret


async def create_config(swarm, name: str, data: bytes) -> pb.Config:
    spec = specs.ConfigSpec(name=name, data=data)
    return (await swarm.control.CreateConfig(control_pb2.CreateConfigRequest(spec=spec))).config


def using(spec: specs.ServiceSpec, secrets=(), configs=()) -> specs.ServiceSpec:
    """The spec with references to the secrets and configs, given as names (or name, FileTarget)."""
    for ref in secrets:
        name, file = ref if isinstance(ref, tuple) else (ref, specs.FileTarget())
        spec.task.container.secrets.add(secret_name=name, file=file)
    for ref in configs:
        name, file = ref if isinstance(ref, tuple) else (ref, specs.FileTarget())
        spec.task.container.configs.add(config_name=name, file=file)
    return spec


@swarm_test(managers=1)
async def test_secret_api_never_returns_the_data(swarm):
    created = await create_secret(swarm, "db_password", tier="db")
    assert created.spec.name == "db_password" and created.spec.labels["tier"] == "db"
    assert created.spec.data == b"" and created.version == 1
    stored = swarm.leader().node.manager.store.secrets.get(created.id)
    assert stored is not None and stored.spec.data == DATA   # kept by the managers all the same

    listed = (await swarm.control.ListSecrets(control_pb2.ListSecretsRequest())).secrets
    assert [(s.spec.name, s.spec.data) for s in listed] == [("db_password", b"")]
    for ref in ("db_password", created.id, created.id[:6]):
        got = (await swarm.control.GetSecret(control_pb2.GetSecretRequest(secret=ref))).secret
        assert got.id == created.id and got.spec.data == b""
    assert await refused(swarm.control.GetSecret(control_pb2.GetSecretRequest(secret="nope"))) == (
        "NOT_FOUND", "secret nope not found")


@swarm_test(managers=1)
async def test_bad_secrets_and_configs_are_refused_with_nothing_stored(swarm):
    await create_secret(swarm, "taken")
    cases = [
        (specs.SecretSpec(name="taken", data=b"x"), ("ALREADY_EXISTS", "a secret named taken already exists")),
        (specs.SecretSpec(name="empty"), ("INVALID_ARGUMENT", "secret empty: data is required (it is empty)")),
        (specs.SecretSpec(name="-bad", data=b"x"), ("INVALID_ARGUMENT", "invalid secret name '-bad'")),
        (specs.SecretSpec(name="big", data=b"x" * (500 * 1024 + 1)),
         ("INVALID_ARGUMENT", "secret big: data is 512001 bytes, more than the limit of 512000 bytes")),
    ]
    for spec, (code, start) in cases:
        got_code, message = await refused(swarm.control.CreateSecret(control_pb2.CreateSecretRequest(spec=spec)))
        assert got_code == code and message.startswith(start), (got_code, message)
    names = [s.spec.name for s in (await swarm.control.ListSecrets(control_pb2.ListSecretsRequest())).secrets]
    assert names == ["taken"]
    # a config of the same name is another kind: allowed
    config = await create_config(swarm, "taken", b"listen 80;")
    got = (await swarm.control.GetConfig(control_pb2.GetConfigRequest(config="taken"))).config
    assert got.id == config.id and got.spec.data == b"listen 80;"   # configs show their data


@swarm_test(managers=1)
async def test_services_store_resolved_references_and_block_removal(swarm):
    secret = await create_secret(swarm, "api_key")
    config = await create_config(swarm, "app_conf", b"debug=0\n")
    target = specs.FileTarget(name="key", uid="1000", gid="1000", mode=0o400)
    service = await swarm.create(using(service_spec("api"), [("api_key", target)], ["app_conf"]))
    ref = service.spec.task.container.secrets[0]
    assert (ref.secret_id, ref.secret_name, ref.file.name, ref.file.uid, ref.file.mode) == (
        secret.id, "api_key", "key", "1000", 0o400)
    conf = service.spec.task.container.configs[0]
    assert (conf.config_id, conf.file.name, conf.file.uid, conf.file.gid, conf.file.mode) == (
        config.id, "app_conf", "0", "0", 0o444)     # Docker's defaults

    assert await refused(swarm.create(using(service_spec("other"), ["missing"]))) == (
        "NOT_FOUND", "secret missing not found")
    await swarm.create(using(service_spec("worker"), ["api_key"]))
    code, message = await refused(swarm.control.RemoveSecret(control_pb2.RemoveSecretRequest(secret="api_key")))
    assert (code, message) == ("FAILED_PRECONDITION",
                               "secret api_key is in use by the following service(s): api, worker")
    code, message = await refused(swarm.control.RemoveConfig(control_pb2.RemoveConfigRequest(config=config.id)))
    assert (code, message) == ("FAILED_PRECONDITION", "config app_conf is in use by the following service(s): api")

    for name in ("api", "worker"):
        await swarm.control.RemoveService(control_pb2.RemoveServiceRequest(service=name))
    await swarm.control.RemoveSecret(control_pb2.RemoveSecretRequest(secret="api_key"))
    await swarm.control.RemoveConfig(control_pb2.RemoveConfigRequest(config="app_conf"))
    assert not (await swarm.control.ListSecrets(control_pb2.ListSecretsRequest())).secrets


def held(swarm, hostname: str) -> tuple[set[str], set[str]]:
    return swarm.nodes[hostname].node.tasks.secrets.held()


@swarm_test(managers=1, workers=2, drain_managers=True)
async def test_a_secret_reaches_only_the_nodes_that_use_it_and_leaves_with_the_last_task(swarm):
    secret = await create_secret(swarm, "token")
    config = await create_config(swarm, "site", b"<h1>hi</h1>")
    await swarm.create(using(service_spec("web", replicas=2, constraints=["node.hostname==w1"]),
                             ["token"], [("site", specs.FileTarget(name="/srv/index.html", mode=0o440))]))
    await swarm.create(service_spec("plain", constraints=["node.hostname==w2"]))
    await swarm.until(lambda: swarm.converged("web", 2), what="web running on w1")
    await swarm.until(lambda: swarm.converged("plain", 1), what="plain running on w2")

    assert held(swarm, "w1") == ({secret.id}, {config.id})
    assert held(swarm, "w2") == (set(), set())          # runs a task, but none that uses them
    files = {f.target: f for cfg in swarm.nodes["w1"].running("web") for f in cfg.files}
    assert sorted(files) == ["/run/secrets/token", "/srv/index.html"]
    assert (files["/run/secrets/token"].data, files["/run/secrets/token"].mode) == (DATA, 0o444)
    assert (files["/srv/index.html"].data, files["/srv/index.html"].mode) == (b"<h1>hi</h1>", 0o440)

    await swarm.scale("web", 1)                           # one task left: still needed
    await swarm.until(lambda: swarm.converged("web", 1), what="web scaled to 1")
    assert held(swarm, "w1") == ({secret.id}, {config.id})
    await swarm.control.RemoveService(control_pb2.RemoveServiceRequest(service="web"))
    await swarm.until(lambda: held(swarm, "w1") == (set(), set()), what="the secret gone from w1")
