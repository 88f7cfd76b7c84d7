"""Every file under fixtures/ loads, or fails with a specific, correct error; golden
StackSpecs for a few (regenerate: COVEY_UPDATE_GOLDEN=1). The public corpus beside a CI
checkout is an extra check outside pytest: tests/corpus_check.py."""
import io
import json
import os

import pytest

from covey.compose import ComposeError, load_model, load_stack, render_yaml
from tests.unit.compose.compose_testlib import FIXTURES, GOLDEN, as_dict

GATEWAY_ENV = {"DOMAIN": "example.org", "ADMIN_USER": "root"}
ENV = {"gateway-env.yml": GATEWAY_ENV}

# Files that must fail, and how.
FAILS = {
    "volume-conflict.yml": 'conflicting parameters "external" and "driver" specified for volume "blobs"',
    "worker-missing-envfile.yml": "not-here.env: cannot read env file",
    "undefined-network.yml": "undefined network 'missing'",
    # the base of a merge chain alone: its network is declared only by the overrides
    "chain-base.yml": "undefined network 'app-net'",
}
FILES = sorted(p.name for p in FIXTURES.glob("*.yml"))


def fixture(*names: str) -> list[str]:
    return [str(FIXTURES / name) for name in names]


def test_every_failing_fixture_is_there():
    assert len(FILES) >= 10 and set(FAILS) <= set(FILES)


@pytest.mark.parametrize("name", FILES)
def test_fixture_file(name):
    if name in FAILS:
        with pytest.raises(ComposeError, match=FAILS[name]) as info:
            load_model(fixture(name), environ=ENV.get(name, {}))
        assert info.value.file and info.value.line
        return
    loaded = load_model(fixture(name), environ=ENV.get(name, {}))
    assert loaded.model["services"]
    # what stack config prints loads again to the same model
    again = load_model(["-"], environ={}, skip_interpolation=True,
                       stdin=io.BytesIO(render_yaml(loaded.model).encode())).model
    assert again["services"].keys() == loaded.model["services"].keys()


@pytest.mark.parametrize("environ, missing, where", [
    ({}, "ADMIN_USER", ("services", "gateway", "environment", "ADMIN_USER")),
    ({"ADMIN_USER": "root"}, "DOMAIN", ("services", "gateway", "deploy", "labels"))])
def test_required_variables_name_the_missing_one_and_its_place(environ, missing, where):
    with pytest.raises(ComposeError, match=f"required variable {missing} is missing a value: set {missing}") as info:
        load_model(fixture("gateway-env.yml"), environ=environ)
    assert info.value.path[:len(where)] == where and info.value.line


def test_interpolation_defaults_and_escaped_dollars():
    gateway = load_model(fixture("gateway-env.yml"), environ=GATEWAY_ENV).model["services"]["gateway"]
    assert gateway["image"] == "example/gateway:2.0"
    assert gateway["environment"] == {"ADMIN_USER": "root", "LOG_LEVEL": "info"}
    assert gateway["deploy"]["labels"] == {"gateway.rule": "Host(`gw.example.org`)", "gateway.price": "$5"}


def test_env_file_values_are_environment_and_environment_wins():
    worker = load_model(fixture("worker-envfile.yml"), environ={}).model["services"]["worker"]
    assert worker["environment"] == {"QUEUE_URL": "amqp://queue:5672", "WORKERS": "8"}


def test_interpolated_replicas_are_cast_to_an_integer():
    for environ, replicas in (({}, 3), ({"ENCODER_REPLICAS": "2"}, 2)):
        spec, _ = load_stack(fixture("edge-ports.yml"), environ=environ, stack_name="edge", read_files=False)
        encoder = next(s for s in spec.services if s.name == "edge_encoder")
        assert encoder.replicated.replicas == replicas


def test_compose_only_keys_are_skipped_with_a_warning_each():
    """Docker rejects `profiles`; we read the Compose Specification and say what we skip."""
    loaded = load_model(fixture("dev-profiles.yml"), environ={})
    assert set(loaded.model["services"]) == {"api", "api-worker"}
    assert sum("skipped" in w for w in loaded.warnings) == 2
    assert any("'api-worker': key 'extends' is ignored" in w for w in loaded.warnings)
    assert any("'api': key 'security_opt' is ignored" in w for w in loaded.warnings)
    assert loaded.model["services"]["api"]["ports"][0]["published"] == 8000


@pytest.mark.parametrize("overrides", [["chain-prod.yml"], ["chain-prod.yml", "chain-update.yml"],
                                       ["chain-prod.yml", "chain-rollback.yml"]])
def test_merge_chain_with_a_utf16_override(overrides):
    spec, _ = load_stack(fixture("chain-base.yml", *overrides), environ={}, stack_name="numbers")
    assert [s.name for s in spec.services] == ["numbers_numbers-api", "numbers_numbers-web"]
    assert [n.name for n in spec.networks] == ["numbers-prod"]


GOLDEN_CASES = {
    "poll": ["poll-stack.yml"],
    "shop": ["shop-secrets.yml"],
    "edge": ["edge-ports.yml"],
    "numbers": ["chain-base.yml", "chain-prod.yml", "chain-update.yml"],
}


@pytest.mark.parametrize("case", sorted(GOLDEN_CASES))
def test_golden_conversion(case):
    # secret and config files are not fixtures: compare without data
    spec, warnings = load_stack(fixture(*GOLDEN_CASES[case]), environ={}, stack_name=case, read_files=False)
    got = {"spec": as_dict(spec), "warnings": warnings}
    text = json.dumps(got, indent=1, sort_keys=True).replace(str(FIXTURES), "<fixtures>") + "\n"
    golden = GOLDEN / f"{case}.json"
    if os.environ.get("COVEY_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()
