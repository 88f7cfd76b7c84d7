"""The chaos suite's lab: 3 managers, each with its Raft directory on a small disk of its
own (a tmpfs: lab hosts share the machine's filesystem), so that one can be filled.
`chaos_lab` builds it for any number of managers (test_partitions.py: 5).

Everything is named by the lab's prefix; at the end every fault still started is healed,
every coveyd ended, the disks unmounted and the lab removed, also when a test failed.
"""
import os
from collections.abc import Iterator

import pytest

from deploy.lab import Lab
from tests.chaos.nemesis import Chaos
from tests.chaos.workload import control, create_service
from tests.e2e.swarmtools import HEARTBEAT, dump_logs, healthy
from tests.support.smalldisk import SmallDisk

MANAGERS = 3
CLIENTS = 3
RAFT_DISK = 64 * 1024 * 1024     # bytes of tmpfs per manager's raft dir (memory only as used)


def pytest_collection_modifyitems(items):
    for item in items:
        if "/chaos/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session", autouse=True)
def _require_root():
    assert os.geteuid() == 0, "the chaos suite builds network namespaces and must run as root"


def chaos_lab(managers: int) -> Iterator[Chaos]:
    """A swarm of `managers` managers (every host one) with the clients' services, as a
    fixture's body: yields its Chaos, then removes everything."""
    lab = Lab(managers).up()
    disks: dict[str, SmallDisk] = {}
    chaos = None
    try:
        for host in lab.hosts:
            disks[host.name] = SmallDisk(host.data_dir / "raft", RAFT_DISK)
        lab.form_swarm(HEARTBEAT, managers=managers)
        names = tuple(h.name for h in lab.hosts)
        healthy(lab, "host1", names)
        stub = control(str(lab.hosts[0].socket))
        for process in range(CLIENTS):
            create_service(stub, f"chaos-s{process}")
        chaos = Chaos(lab, list(lab.hosts), disks)
        yield chaos
    finally:
        if chaos is not None:
            chaos.heal_all()
        for host in lab.hosts:
            lab.stop_coveyd(host)
        for disk in disks.values():
            disk.unmount()
        lab.down()
        dump_logs(lab)


@pytest.fixture(scope="module")
def chaos():
    yield from chaos_lab(MANAGERS)
