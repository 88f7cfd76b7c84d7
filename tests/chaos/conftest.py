"""The chaos suite's lab: 3 managers, each with its Raft directory on a small disk of its
own (lab hosts share the machine's filesystem), so that one can be filled or turned
read-only: ext4 on a loop device (tests/support/smalldisk.py LoopDisk), since any manager
may be the leader and a tmpfs cannot turn read-only under open files. Its fsyncs are real
(about 0.6 ms each here), its fill a fallocate.

Everything is named by the lab's prefix; at the end every fault still started is healed,
every coveyd ended, the disks unmounted and the lab removed, also when a test failed.
"""
import os

import pytest

from deploy.lab import Lab
from tests.chaos.nemesis import Chaos
from tests.chaos.workload import control, create_service
from tests.e2e.swarmtools import HEARTBEAT, dump_logs, healthy
from tests.support.smalldisk import LoopDisk

MANAGERS = 3
CLIENTS = 3
RAFT_DISK = 64 * 1024 * 1024     # bytes of each manager's raft disk (a sparse image: disk only as used)


def pytest_collection_modifyitems(items):
    for item in items:
        if "/chaos/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session", autouse=True)
def _require_root():
    assert os.geteuid() == 0, "the chaos suite builds network namespaces and must run as root"


@pytest.fixture(scope="module")
def chaos():
    lab = Lab(MANAGERS).up()
    disks: dict[str, LoopDisk] = {}
    chaos = None
    try:
        for host in lab.hosts:
            disks[host.name] = LoopDisk(host.data_dir / "raft", RAFT_DISK)
        lab.form_swarm(HEARTBEAT, managers=MANAGERS)
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
            try:
                disk.unmount()
            except Exception as exc:  # noqa: BLE001  (go on: every loop device must be detached)
                print(f"chaos: removing the disk {disk.image} failed: {exc}")
        lab.down()
        dump_logs(lab)
