"""Whatever it is fed, the loader ends in a result or a ComposeError, never a traceback."""
import io

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from covey.compose import ComposeError, load_stack
from tests.unit.compose.compose_testlib import FIXTURES

settings.register_profile("compose", max_examples=120, derandomize=True, deadline=None,
                          suppress_health_check=list(HealthCheck), database=None)
FUZZ = settings.get_profile("compose")

KEYS = ["services", "networks", "volumes", "secrets", "configs", "name", "version", "x-a", "web",
        "image", "ports", "deploy", "replicas", "mode", "environment", "labels", "command",
        "healthcheck", "test", "volumes", "target", "source", "type", "external", "depends_on",
        "condition", "resources", "limits", "cpus", "memory", "restart_policy", "update_config",
        "placement", "constraints", "secrets", "file", "env_file", "ulimits", "tmpfs", "driver",
        "extra_hosts", "published", "protocol", "max_attempts", "delay", "logging", "ipam"]
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-5, 70000),
                    st.floats(allow_nan=False, allow_infinity=False),
                    st.sampled_from(["", "web", "80:80", "${X:-1}", "$", "${", "1s", "0440",
                                     "./f", "/x:/y:ro", "global", "host", "vip", "10m", "-1",
                                     "a=b", "on-failure", "NONE", "x-y", "udp", "[::1]:1:2"]),
                    st.text(max_size=8))
TREES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(KEYS), inner, max_size=5)),
    max_leaves=30)


def load_bytes(data: bytes):
    try:
        load_stack(["-"], environ={"X": "2"}, stack_name="f", stdin=io.BytesIO(data),
                   read_files=False)
    except ComposeError as exc:
        assert str(exc)


@FUZZ
@given(st.binary(max_size=200))
def test_random_bytes(data):
    load_bytes(data)


@FUZZ
@given(TREES)
def test_random_compose_shaped_trees(tree):
    load_bytes(yaml.safe_dump({"services": {"web": tree}} if not isinstance(tree, dict) else tree)
               .encode())


@FUZZ
@given(st.dictionaries(st.sampled_from(KEYS), TREES, max_size=6))
def test_random_services(service):
    load_bytes(yaml.safe_dump({"services": {"web": service}, "networks": {"n": {}},
                               "volumes": {"v": {}}}).encode())


_SEEDS = sorted(p.read_bytes() for p in FIXTURES.glob("*.yml") if b"\x00" not in p.read_bytes())


@FUZZ
@given(st.sampled_from(_SEEDS), st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 8),
                                                    st.binary(max_size=6)), max_size=4))
def test_mutated_fixture_files(original, edits):
    data = bytearray(original)
    for position, length, insert in edits:
        at = position % (len(data) + 1)
        data[at:at + length] = insert
    load_bytes(bytes(data))
