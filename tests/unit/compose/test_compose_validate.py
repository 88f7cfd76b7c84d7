"""Schema validation after interpolation: errors name file, path and line."""
import pytest

from covey.compose import ComposeError, load_model
from tests.unit.compose.compose_testlib import model, write


def error_of(tmp_path, text, environ=None) -> ComposeError:
    path = write(tmp_path, text)
    with pytest.raises(ComposeError) as info:
        load_model([path], environ=environ or {})
    assert info.value.file == path
    return info.value


def test_unknown_service_key(tmp_path):
    err = error_of(tmp_path, "services:\n  web:\n    image: x\n    imagee: y\n")
    assert err.path == ("services", "web", "imagee") and err.line == 4
    assert "unknown key 'imagee'" in str(err)
    assert str(err).startswith(f"{err.file}:4, services.web.imagee:")


def test_unknown_top_level_key(tmp_path):
    err = error_of(tmp_path, "services: {}\nservice: {}\n")
    assert err.path == ("service",) and err.line == 2


def test_extensions_are_allowed_everywhere(tmp_path):
    m = model(tmp_path, """
        x-top: 1
        services:
          web:
            image: x
            x-svc: {a: 1}
            deploy: {x-d: 1}
        networks:
          n: {x-n: 1}
    """)
    assert m["x-top"] == 1 and m["services"]["web"]["x-svc"] == {"a": 1}


def test_wrong_type_names_the_list_item(tmp_path):
    err = error_of(tmp_path, "services:\n  web:\n    image: x\n    ports:\n      - 80\n      - [81]\n")
    assert err.path == ("services", "web", "ports", 1) and err.line == 6


def test_schema_sees_interpolated_values(tmp_path):
    err = error_of(tmp_path, "services:\n  web:\n    image: x\n    read_only: ${RO}\n",
                   environ={"RO": "maybe"})
    assert err.path == ("services", "web", "read_only") and "not true or false" in str(err)


def test_version_number_or_missing(tmp_path):
    assert model(tmp_path, "version: 3.8\nservices: {a: {image: x}}\n")["services"]["a"]["image"] == "x"
    assert model(tmp_path, "services: {a: {image: x}}\n")["services"]["a"]["image"] == "x"


def test_compose_spec_only_keys(tmp_path):
    m = model(tmp_path, """
        name: shop
        services:
          db: {image: postgres, healthcheck: {test: pg_isready}}
          web:
            image: x
            depends_on:
              db: {condition: service_healthy, restart: true}
            env_file:
              - path: ./missing.env
                required: false
            deploy: {resources: {limits: {cpus: 0.5}}}
    """)
    assert m["name"] == "shop"
    assert m["services"]["web"]["depends_on"]["db"]["condition"] == "service_healthy"


def test_external_volume_with_driver_conflicts(tmp_path):
    err = error_of(tmp_path, "services: {}\nvolumes:\n  v:\n    external: true\n    driver: rexray\n")
    assert 'conflicting parameters "external" and "driver" specified for volume "v"' in str(err)
    assert err.line == 5


@pytest.mark.parametrize("text,path,message", [
    ("services:\n  a:\n    image: x\n    networks: [nope]\n", ("services", "a", "networks", "nope"),
     "undefined network 'nope'"),
    ("services:\n  a:\n    image: x\n    volumes: ['nope:/d']\n", ("services", "a", "volumes", 0),
     "undefined volume 'nope'"),
    ("services:\n  a:\n    image: x\n    secrets: [nope]\n", ("services", "a", "secrets", 0),
     "undefined secret 'nope'"),
    ("services:\n  a:\n    image: x\n    stop_grace_period: 10 parsecs\n",
     ("services", "a", "stop_grace_period"), "invalid duration"),
    ("services:\n  a:\n    image: x\n    ports: ['99999:80']\n", ("services", "a", "ports", 0),
     "out of range"),
    ("services:\n  a:\n    image: x\n    deploy: {resources: {limits: {memory: lots}}}\n",
     ("services", "a", "deploy", "resources", "limits", "memory"), "invalid size"),
])
def test_semantic_errors(tmp_path, text, path, message):
    err = error_of(tmp_path, text)
    assert err.path == path and message in str(err) and err.line
