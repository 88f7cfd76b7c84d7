"""The lab for end-to-end tests: real coveyd processes on hosts made of network namespaces.

These tests need root (namespaces, later runc). They never skip: if the lab
cannot be built, the test fails and says why.
"""
import os

import pytest

from deploy.lab import Lab


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

