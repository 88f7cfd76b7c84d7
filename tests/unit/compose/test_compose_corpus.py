"""Every file of the shared corpus loads, or fails with a specific, correct error;
golden StackSpecs for a handful (regenerate: COVEY_UPDATE_GOLDEN=1)."""
import json
import os
import shutil

import pytest

from tests.unit.compose.compose_testlib import CORPUS, GOLDEN, as_dict
from covey.compose import ComposeError, load_model, load_stack, render_yaml

TIANGOLO = {"DOMAIN": "example.com", "EMAIL": "a@example.com", "USERNAME": "admin",
            "HASHED_PASSWORD": "$apr1$x$y"}
SWARMPROM = {"DOMAIN": "example.com", "ADMIN_USER": "admin", "HASHED_PASSWORD": "$apr1$x$y"}
ENV = {"tiangolo__": TIANGOLO, "stefanprodan__swarmprom__docker-compose.traefik": SWARMPROM,
       "caddy-docker-proxy__tests__envfile": {"DOCKER_SOCKET_TYPE": "bind",
                                              "DOCKER_SOCKET_PATH": "/var/run/docker.sock"}}

# Files that must fail, and how (with the variables INDEX.md names, where it names any).
FAILS = {
    "vfarcic__docker-flow-stacks__docker__registry-rexray-external.yml":
        'conflicting parameters "external" and "driver" specified for volume "registry"',
    "vegasbrianc__prometheus__docker-traefik-stack.yml":
        "grafana/config.monitoring: cannot read env file",
    "docker__cli__cli__compose__loader__full-example.yml": "example1.env: cannot read env file",
    # the base of a merge chain alone: its network is declared only by the overrides
    "sixeyed__diamol__ch14__exercises__numbers__docker-compose.yml": "undefined network 'app-net'",
}
FILES = sorted(p.name for p in CORPUS.glob("*.yml"))


def env_for(name: str) -> dict:
    return next((env for key, env in ENV.items() if key in name), {})


def test_corpus_is_there():
    assert len(FILES) == 40


@pytest.mark.parametrize("name", FILES)
def test_corpus_file(name):
    path = str(CORPUS / name)
    if name in FAILS:
        with pytest.raises(ComposeError, match=FAILS[name]) as info:
            load_model([path], environ=env_for(name))
        assert info.value.file and (info.value.line or "env file" in str(info.value))
        return
    loaded = load_model([path], environ=env_for(name))
    assert loaded.model["services"]
    # what stack config prints loads again to the same model
    again = load_model(["-"], environ={}, skip_interpolation=True,
                       stdin=_bytes(render_yaml(loaded.model))).model
    assert again["services"].keys() == loaded.model["services"].keys()


def _bytes(text):
    import io
    return io.BytesIO(text.encode())


@pytest.mark.parametrize("name", ["tiangolo__dockerswarm.rocks__docs__swarmpit.yml",
                                  "stefanprodan__swarmprom__docker-compose.traefik.yml"])
def test_required_variables_fail_without_environment(name):
    with pytest.raises(ComposeError, match="required variable DOMAIN is missing a value") as info:
        load_model([str(CORPUS / name)], environ={})
    assert info.value.path[:2] == ("services", info.value.path[1]) and info.value.line


def test_full_example_with_its_env_files(tmp_path):
    src = CORPUS / "docker__cli__cli__compose__loader__full-example.yml"
    shutil.copy(src, tmp_path / src.name)
    (tmp_path / "example1.env").write_text("FOO=foo_from_env_file\n")
    (tmp_path / "example2.env").write_text("BAR=bar_from_env_file_2\n")
    with pytest.raises(ComposeError, match="undefined network 'other-other-network'") as info:
        load_model([str(tmp_path / src.name)], environ={})
    assert info.value.line == 216


def test_kong_compose_spec_file_loads_with_its_profiles_skipped():
    """Docker rejects `profiles`; we read the Compose Specification and say what we skip."""
    loaded = load_model([str(CORPUS / "Kong__docker-kong__compose__docker-compose.yml")],
                        environ={})
    assert set(loaded.model["services"]) == {"kong"}
    assert sum("skipped" in w for w in loaded.warnings) == 3


def test_merge_chain_with_utf16_override():
    base = str(CORPUS / "sixeyed__diamol__ch14__exercises__numbers__docker-compose.yml")
    for override in ("prod-full", "prod-update-config", "prod-rollback-config"):
        if override != "prod-full":
            files = [base, str(CORPUS / "sixeyed__diamol__ch14__exercises__numbers__prod-full.yml"),
                     str(CORPUS / f"sixeyed__diamol__ch14__exercises__numbers__{override}.yml")]
        else:
            files = [base, str(CORPUS / f"sixeyed__diamol__ch14__exercises__numbers__{override}.yml")]
        spec, _ = load_stack(files, environ={}, stack_name="numbers")
        assert [s.name for s in spec.services] == ["numbers_numbers-api", "numbers_numbers-web"]
        assert [n.name for n in spec.networks] == ["numbers-prod"]


GOLDEN_CASES = {
    "voting": ["dockersamples__example-voting-app__docker-stack.yml"],
    "gocast": ["TUM-Dev__gocast__docs__static__deployment__docker-compose.yml"],
    "atsea": ["dockersamples__atsea-sample-shop-app__docker-stack.yml"],
    "jenkins": ["vfarcic__docker-flow-stacks__jenkins__vfarcic-jenkins-master-agent-df-proxy-aws.yml"],
    "consul": ["jakubhajek__traefik-consul-swarm__stack-consul.yml"],
    "numbers": ["sixeyed__diamol__ch14__exercises__numbers__docker-compose.yml",
                "sixeyed__diamol__ch14__exercises__numbers__prod-full.yml"],
}


@pytest.mark.parametrize("case", sorted(GOLDEN_CASES))
def test_golden_conversion(case):
    files = [str(CORPUS / f) for f in GOLDEN_CASES[case]]
    # secrets and configs read from files are not in the corpus: compare without data
    spec, warnings = load_stack(files, environ={}, stack_name=case, read_files=False)
    got = {"spec": as_dict(spec), "warnings": warnings}
    text = json.dumps(got, indent=1, sort_keys=True).replace(str(CORPUS), "<corpus>") + "\n"
    golden = GOLDEN / f"{case}.json"
    if os.environ.get("COVEY_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()
