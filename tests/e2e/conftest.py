"""The lab for end-to-end tests: real coveyd processes on hosts made of network namespaces.

These tests need root (namespaces, later runc). They never skip: if the lab
cannot be built, the test fails and says why.
"""
import json
import os

import pytest

from lab import Lab, wait_until

HEARTBEAT = "1s"  # short periods so that Down is seen in ~3 s


def pytest_collection_modifyitems(items):
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session", autouse=True)
def _require_root():
    assert os.geteuid() == 0, "e2e tests build network namespaces and must run as root"


@pytest.fixture
def lab_factory():
    """Make labs that are torn down after the test, also when it fails."""
    labs = []

    def make(hosts: int, **kwargs) -> Lab:
        lab = Lab(hosts, **kwargs)
        labs.append(lab)
        return lab.up()

    yield make
    for lab in labs:
        lab.down()


def node_table(lab: Lab, host) -> dict:
    """hostname -> node as `covey node ls --format json` shows it."""
    nodes = json.loads(lab.covey(host, "node", "ls", "--format", "json").stdout)
    return {n["description"]["hostname"]: n for n in nodes}


def node_state(lab: Lab, host, hostname: str) -> str:
    node = node_table(lab, host).get(hostname)
    return node["status"].get("state", "UNKNOWN") if node else "ABSENT"


def wait_state(lab: Lab, manager, hostname: str, state: str, timeout: float = 30.0) -> None:
    wait_until(lambda: node_state(lab, manager, hostname) == state, timeout, 0.2,
               f"{hostname} to be {state}")
