"""The stack plan (manager/controlapi/stackplan.py) over snapshots: a first deploy creates
everything in creation order, the same files again change nothing, a change touches only
its service, prune, external objects, names taken outside the stack, secret versions that
roll their users, rollback, removal; the writes are applied here as the store would."""
import json
import textwrap
from pathlib import Path

import pytest
from google.protobuf import json_format

from covey.compose import load_stack
from covey.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from manager.controlapi import stackplan
from manager.state.formats import NAMES
from proto import objects_pb2 as pb
from proto import specs_pb2 as specs
from proto import store_pb2

Change = stackplan.Change
SHOP = """
services:
  db:
    image: lab/db:1
    secrets: [db_password]
    healthcheck: {test: ["CMD", "true"], interval: 1s}
  api:
    image: lab/api:1
    depends_on: {db: {condition: service_healthy}}
    networks: [default, back]
    secrets: [db_password]
    configs: [{source: api_conf, target: /etc/api.conf}]
  web:
    image: lab/web:1
    depends_on: [api]
networks:
  back: {}
secrets:
  db_password: {environment: DB_PASSWORD}
configs:
  api_conf: {content: "port=80"}
"""


def stack_spec(tmp_path, text: str = SHOP, name: str = "shop", s3cret: str = "s3cret",
               **replace) -> specs.StackSpec:
    """The StackSpec the loader makes of `text` (its secret's value `s3cret`), with each
    `old=new` replaced (__ for :)."""
    for old, new in replace.items():
        text = text.replace(old.replace("__", ":"), new)
    path = tmp_path / "compose.yml"
    path.write_text(textwrap.dedent(text))
    spec, _ = load_stack([str(path)], stack_name=name, environ={"DB_PASSWORD": s3cret})
    return spec


def empty() -> stackplan.Snapshot:
    return stackplan.Snapshot(pb.Cluster(id="cluster", meta=pb.Meta(version=1)))


def apply(snap: stackplan.Snapshot, plan: stackplan.Plan) -> stackplan.Snapshot:
    """The snapshot after the plan's write, applied as the store applies a batch."""
    tables = {name: {o.id: o for o in getattr(snap, attr)} for name, attr in
              (("service", "services"), ("network", "networks"), ("secret", "secrets"),
               ("config", "configs"), ("stack", "stacks"))}
    cluster = snap.cluster
    for action in plan.actions:
        table = action.WhichOneof("object")
        obj = getattr(action, table)
        if table == "cluster":
            assert action.expected_version == cluster.meta.version
            continue
        if action.kind == store_pb2.StoreAction.DELETE:
            assert tables[table][obj.id].meta.version == action.expected_version
            del tables[table][obj.id]
            continue
        if action.kind == store_pb2.StoreAction.CREATE:
            assert obj.id not in tables[table]
        stored = type(obj)()
        stored.CopyFrom(obj)
        stored.meta.version = action.expected_version + 1
        tables[table][obj.id] = stored
    return stackplan.Snapshot(cluster, *(list(tables[t].values()) for t in
                                         ("service", "network", "secret", "config", "stack")))


def lines(plan: stackplan.Plan) -> list[str]:
    return [f"{Change.Action.Name(c.action)} {c.kind} {c.name}" for c in plan.changes
            if c.action != Change.UNCHANGED]


def by_name(snap: stackplan.Snapshot, name: str) -> pb.Service:
    return next(s for s in snap.services if s.spec.name == name)


def test_a_first_deploy_creates_everything_in_dependency_order_in_one_write(tmp_path):
    plan = stackplan.deploy(empty(), stack_spec(tmp_path))
    assert lines(plan) == ["CREATE network shop_back", "CREATE network shop_default",
                           "CREATE secret shop_db_password", "CREATE config shop_api_conf",
                           "CREATE service shop_db", "CREATE service shop_api", "CREATE service shop_web"]
    kinds = [a.WhichOneof("object") for a in plan.actions]
    assert kinds.count("stack") == 1 and kinds[-1] == "cluster"   # the version guard
    snap = apply(empty(), plan)
    api, back = by_name(snap, "shop_api"), next(n for n in snap.networks if n.spec.name == "shop_back")
    assert back.id in [c.target for c in api.spec.task.networks]
    assert api.spec.labels[stackplan.NAMESPACE_LABEL] == "shop"
    secret = snap.secrets[0]
    assert (api.spec.task.container.secrets[0].secret_id, secret.spec.data) == (secret.id, b"s3cret")
    assert snap.stacks[0].generation == 1 and len({n.subnet for n in snap.networks}) == 2


def test_the_same_files_again_change_nothing(tmp_path):
    snap = apply(empty(), stackplan.deploy(empty(), stack_spec(tmp_path)))
    again = stackplan.deploy(snap, stack_spec(tmp_path))
    assert again.actions == [] and lines(again) == []
    assert len(again.changes) == 7                         # each object reported UNCHANGED


def test_a_change_updates_only_its_service(tmp_path):
    snap = apply(empty(), stackplan.deploy(empty(), stack_spec(tmp_path)))
    plan = stackplan.deploy(snap, stack_spec(tmp_path, **{"lab/web__1": "lab/web:2"}))
    assert lines(plan) == ["UPDATE service shop_web"]
    after = apply(snap, plan)
    web = by_name(after, "shop_web")
    assert (web.spec_version, web.previous_spec.task.container.image, web.update_status.state) == (
        2, "lab/web:1", pb.UpdateStatus.UPDATING)
    assert after.stacks[0].generation == 2 and after.stacks[0].previous_spec == snap.stacks[0].spec


def test_prune_removes_services_no_longer_in_the_files_and_only_then(tmp_path):
    snap = apply(empty(), stackplan.deploy(empty(), stack_spec(tmp_path)))
    without_web = SHOP.replace("  web:\n    image: lab/web:1\n    depends_on: [api]\n", "")
    kept = stackplan.deploy(snap, stack_spec(tmp_path, without_web))
    assert lines(kept) == []
    pruned = stackplan.deploy(snap, stack_spec(tmp_path, without_web), prune=True)
    assert lines(pruned) == ["REMOVE service shop_web"]


def test_an_external_object_must_exist(tmp_path):
    text = SHOP.replace("networks:\n  back: {}", "networks:\n  back: {external: true}")
    with pytest.raises(NotFound, match="stack shop: external network back not found"):
        stackplan.deploy(empty(), stack_spec(tmp_path, text))
    secret = SHOP.replace("db_password: {environment: DB_PASSWORD}", "db_password: {external: true}")
    with pytest.raises(NotFound, match="external secret db_password not found"):
        stackplan.deploy(empty(), stack_spec(tmp_path, secret))
    snap = empty()
    snap.networks.append(pb.Network(id="n1", spec=specs.NetworkSpec(name="back"), subnet="10.9.0.0/24"))
    plan = stackplan.deploy(snap, stack_spec(tmp_path, text))
    api = next(a.service for a in plan.actions if a.WhichOneof("object") == "service"
               and a.service.spec.name == "shop_api")
    assert "n1" in [c.target for c in api.spec.task.networks]


def test_a_name_taken_outside_the_stack_is_refused(tmp_path):
    snap = empty()
    snap.services.append(pb.Service(id="s1", spec=specs.ServiceSpec(name="shop_web")))
    with pytest.raises(AlreadyExists, match="service shop_web already exists .outside any stack."):
        stackplan.deploy(snap, stack_spec(tmp_path))
    other = apply(empty(), stackplan.deploy(empty(), stack_spec(tmp_path, name="shop")))
    with pytest.raises(AlreadyExists, match="network shop_back already exists .by stack shop."):
        spec = stack_spec(tmp_path, name="tools")
        spec.networks[0].name = "shop_back"
        stackplan.deploy(other, spec)


def test_bad_references_and_specs_are_refused_naming_them(tmp_path):
    spec = stack_spec(tmp_path)
    spec.services[1].task.networks.add(target="nowhere")
    with pytest.raises(InvalidArgument, match="service shop_api: network 'nowhere' is neither a network of stack"):
        stackplan.deploy(empty(), spec)
    spec = stack_spec(tmp_path)
    spec.services[2].task.container.image = ""
    with pytest.raises(InvalidArgument, match="service shop_web: an image is required"):
        stackplan.deploy(empty(), spec)


def test_a_changed_secret_is_a_new_version_that_rolls_its_users_and_retires_the_old(tmp_path):
    snap = apply(empty(), stackplan.deploy(empty(), stack_spec(tmp_path)))
    old = snap.secrets[0]
    plan = stackplan.deploy(snap, stack_spec(tmp_path, s3cret="n3w"))
    assert lines(plan) == ["CREATE secret shop_db_password-v2", "UPDATE service shop_db", "UPDATE service shop_api",
                           "REMOVE secret shop_db_password"]
    after = apply(snap, plan)
    (new,) = after.secrets
    assert (new.version, new.spec.data, new.spec.labels[stackplan.VERSIONED_LABEL]) == (
        2, b"n3w", "shop_db_password")
    refs = by_name(after, "shop_api").spec.task.container.secrets
    assert (refs[0].secret_id, refs[0].secret_name, refs[0].file.name) == (new.id, new.spec.name, "db_password")
    assert new.id != old.id and stackplan.deploy(after, stack_spec(tmp_path, s3cret="n3w")).actions == []


def test_rollback_puts_the_previous_spec_back_as_one_change(tmp_path):
    first = apply(empty(), stackplan.deploy(empty(), stack_spec(tmp_path)))
    without_web = SHOP.replace("  web:\n    image: lab/web:1\n    depends_on: [api]\n", "")
    second = apply(first, stackplan.deploy(first, stack_spec(tmp_path, without_web, s3cret="n3w",
                                                             **{"lab/db__1": "lab/db:2"}), prune=True))
    plan = stackplan.rollback(second, "shop")
    assert lines(plan) == ["CREATE secret shop_db_password-v3", "UPDATE service shop_db", "UPDATE service shop_api",
                           "CREATE service shop_web", "REMOVE secret shop_db_password-v2"]
    back = apply(second, plan)
    db = by_name(back, "shop_db")
    assert (db.spec.task.container.image, db.update_status.state) == ("lab/db:1", pb.UpdateStatus.ROLLBACK_STARTED)
    assert back.secrets[0].spec.data == b"s3cret"
    assert back.stacks[0].spec == first.stacks[0].spec and back.stacks[0].previous_spec == second.stacks[0].spec
    with pytest.raises(FailedPrecondition, match="no previous deploy"):
        stackplan.rollback(first, "shop")


def test_remove_takes_every_object_of_the_stack_and_nothing_else(tmp_path):
    snap = apply(empty(), stackplan.deploy(empty(), stack_spec(tmp_path)))
    snap.services.append(pb.Service(id="other", spec=specs.ServiceSpec(name="other")))
    plan = stackplan.remove(snap, "shop")
    after = apply(snap, plan)
    assert [s.spec.name for s in after.services] == ["other"]
    assert (after.networks, after.secrets, after.configs, after.stacks) == ([], [], [], [])
    with pytest.raises(NotFound, match="nothing found in stack nope"):
        stackplan.remove(snap, "nope")


def test_a_stack_too_big_for_one_write_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(stackplan, "MAX_WRITE_BYTES", 1000)
    with pytest.raises(InvalidArgument, match="stack shop is too big to change in one write"):
        stackplan.deploy(empty(), stack_spec(tmp_path))


def test_api_answers_never_show_secret_data(tmp_path):
    plan = stackplan.deploy(empty(), stack_spec(tmp_path))
    assert plan.stack.spec.secrets[0].data == b"s3cret"
    assert stackplan.public(plan.stack).spec.secrets[0].data == b""


def test_every_table_a_plan_writes_is_one_the_store_knows(tmp_path):
    plan = stackplan.deploy(empty(), stack_spec(tmp_path))
    assert {a.WhichOneof("object") for a in plan.actions} <= set(NAMES.values())


def golden(name: str) -> specs.StackSpec:
    """A real stack file of the public corpus as the loader converts it (tests/corpus_golden)."""
    data = json.loads((Path(__file__).parents[1] / "corpus_golden" / f"{name}.json").read_text())
    return json_format.ParseDict(data["spec"], specs.StackSpec())


@pytest.mark.parametrize("name", ["voting", "numbers", "atsea"])
def test_real_stack_files_plan_and_then_plan_nothing(name):
    spec, snap = golden(name), empty()
    for secret in spec.external_secrets:        # atsea's: made beforehand, as its README says
        snap.secrets.append(pb.Secret(id=f"ext-{secret}", spec=specs.SecretSpec(name=secret, data=b"x")))
    first = stackplan.deploy(snap, spec)
    assert [c.name for c in first.changes if c.kind == "service"] == [s.name for s in spec.services]
    assert stackplan.deploy(apply(snap, first), spec).actions == []


def test_a_real_stack_without_its_external_secret_is_refused_by_name():
    with pytest.raises(NotFound, match="stack atsea: external secret postgres_password not found"):
        stackplan.deploy(empty(), golden("atsea"))


def test_registry_credentials_go_to_the_services_of_their_registry_and_alone_roll_nothing(tmp_path):
    text = SHOP.replace("lab/web:1", "reg.lab:5000/web:1")
    auth = {"reg.lab:5000": pb.RegistryAuth(registry="reg.lab:5000", username="u", password="p1")}
    snap = apply(empty(), stackplan.deploy(empty(), stack_spec(tmp_path, text), registry_auths=auth))
    assert {s.spec.name: s.registry_auth.password for s in snap.services} == {
        "shop_db": "", "shop_api": "", "shop_web": "p1"}
    assert stackplan.deploy(snap, stack_spec(tmp_path, text), registry_auths=auth).actions == []
    auth["reg.lab:5000"].password = "p2"
    plan = stackplan.deploy(snap, stack_spec(tmp_path, text), registry_auths=auth)
    assert lines(plan) == ["UPDATE service shop_web"]
    web = by_name(apply(snap, plan), "shop_web")
    assert (web.registry_auth.password, web.spec_version) == ("p2", 1)


PUBLISHING = """
services:
  web: {image: "lab/web:1", ports: ["8080:80", "80"]}
  admin: {image: "lab/admin:1", ports: ["81"]}
"""


def test_published_ports_are_numbered_apart_within_the_stack_and_from_other_services(tmp_path):
    snap = apply(empty(), stackplan.deploy(empty(), stack_spec(tmp_path, PUBLISHING)))
    numbers = sorted(p.published_port for s in snap.services for p in s.ports)
    assert numbers == [8080, 30000, 30001], "automatic ports of one write never collide"
    assert stackplan.deploy(snap, stack_spec(tmp_path, PUBLISHING)).actions == [], "and stay as they are"
    other = stack_spec(tmp_path, PUBLISHING.replace("lab/", "lab2/"), name="other")
    with pytest.raises(InvalidArgument, match="8080/tcp is already published by service shop_web"):
        stackplan.deploy(snap, other)
