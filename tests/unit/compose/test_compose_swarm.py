"""Keys a swarm cannot carry warn once each (errors with --strict); depends_on orders."""
import pytest

from covey.compose import ComposeError, load_model
from covey.compose.compat import SERVICE_KEYS, swarm_warnings
from covey.compose.validate import _validator
from proto import specs_pb2 as specs
from tests.unit.compose.compose_testlib import stack, write

SWARMLESS = """
services:
  web:
    image: x
    build: .
    container_name: web1
    links: [db]
    network_mode: host
    restart: always
    deploy:
      restart_policy: {condition: on-failure}
  db:
    image: postgres
    privileged: true
"""


def test_one_warning_per_key_naming_key_and_service(tmp_path):
    warnings = load_model([write(tmp_path, SWARMLESS)], environ={}).warnings
    for key in ("build", "container_name", "links", "network_mode", "restart"):
        hits = [w for w in warnings if f"'{key}'" in w and "'web'" in w]
        assert len(hits) == 1, (key, warnings)
    assert any("'privileged'" in w and "'db'" in w for w in warnings)
    assert len(warnings) == 6


def test_strict_turns_warnings_into_errors(tmp_path):
    with pytest.raises(ComposeError, match="--strict: .*'build'"):
        load_model([write(tmp_path, SWARMLESS)], environ={}, strict=True)


def test_restart_without_restart_policy_is_used(tmp_path):
    spec = stack(tmp_path, "services: {a: {image: x, restart: 'on-failure:3'}}\n")
    restart = spec.services[0].task.restart
    assert restart.condition == specs.RestartPolicy.ON_FAILURE and restart.max_attempts == 3
    assert load_model([write(tmp_path, "services: {a: {image: x, restart: always}}\n")],
                      environ={}).warnings == []


def test_every_schema_service_key_is_carried_or_warned():
    """No key is dropped silently: each one is either converted or named in a warning."""
    schema_keys = set(_validator().schema["definitions"]["service"]["properties"])
    for key in schema_keys - SERVICE_KEYS:
        warnings = swarm_warnings({"services": {"s": {key: 1}}})
        assert any(f"'{key}'" in w for w in warnings), key


def test_unsupported_section_keys_warn():
    warnings = swarm_warnings({"networks": {"n": {"enable_ipv4": False}},
                               "services": {"s": {"deploy": {"resources": {"reservations": {
                                   "devices": []}}}}}})
    assert any("networks.n" in w and "enable_ipv4" in w for w in warnings)
    assert any("deploy.resources.reservations.devices" in w for w in warnings)


def test_profiles_skip_services_with_a_warning(tmp_path):
    loaded = load_model([write(tmp_path, """
        services:
          app: {image: x}
          debug: {image: y, profiles: [dev]}
    """)], environ={})
    assert set(loaded.model["services"]) == {"app"}
    assert any("'debug' skipped" in w and "dev" in w for w in loaded.warnings)


def test_depends_on_orders_creation_and_waits_for_health(tmp_path):
    spec = stack(tmp_path, """
        services:
          a: {image: x, depends_on: {m: {condition: service_healthy}}}
          m: {image: x, depends_on: [z]}
          z: {image: x}
    """)
    assert [s.name for s in spec.services] == ["s_z", "s_m", "s_a"]
    deps = {(d.service, d.depends_on): d.condition for d in spec.dependencies}
    assert deps == {("s_a", "s_m"): specs.ServiceDependency.HEALTHY,
                    ("s_m", "s_z"): specs.ServiceDependency.STARTED}


def test_dependency_cycle_is_an_error(tmp_path):
    path = write(tmp_path, "services:\n  a: {image: x, depends_on: [b]}\n  b: {image: x, depends_on: [a]}\n")
    with pytest.raises(ComposeError, match="dependency cycle: a -> b -> a"):
        load_model([path], environ={})


def test_undefined_dependency_warns(tmp_path):
    loaded = load_model([write(tmp_path, "services: {a: {image: x, depends_on: [ghost]}}\n")],
                        environ={})
    assert any("undefined service 'ghost'" in w for w in loaded.warnings)
