"""The chaos suite's lab: 3 managers, each with its Raft directory on a small disk of its
own (lab hosts share the machine's filesystem), so that one can be filled or turned
read-only: ext4 on a loop device (tests/support/smalldisk.py LoopDisk), since any manager
may be the leader and a tmpfs cannot turn read-only under open files. Its fsyncs are real
(about 0.6 ms each here), its fill a fallocate. And 2 workers that no fault touches,
running a service's tasks (tests/chaos/tasks.py), with a registry on host1 for its image.
`chaos_lab` builds it for any number of managers (test_partitions.py: 5).

Everything is named by the lab's prefix; at the end every fault still started is healed,
every coveyd ended, the disks unmounted and the lab removed, also when a test failed.
"""
import os
from collections.abc import Iterator

import pytest

from deploy.lab import Lab
from tests.chaos import tasks
from tests.chaos.nemesis import Chaos
from tests.chaos.workload import control, create_service
from tests.e2e.swarmtools import HEARTBEAT, REGISTRY, dump_logs, healthy
from tests.support.images import TestImage, build_and_push
from tests.support.registry import Registry
from tests.support.smalldisk import LoopDisk

MANAGERS = 3
CLIENTS = 3
SOAK = float(os.environ.get("COVEY_CHAOS_SOAK", "0"))   # s per nemesis; 0: CI's short schedule
SOAK_TIMEOUT_MARGIN = 300.0      # s a soaked test may take beyond SOAK: lab recovery, final reads, the checker
RAFT_DISK = 64 * 1024 * 1024     # bytes of each manager's raft disk (a sparse image: disk only as used)


def pytest_collection_modifyitems(items):
    for item in items:
        if "/chaos/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)
            if SOAK:    # a soak outlasts pyproject's per-test timeout by design
                item.add_marker(pytest.mark.timeout(SOAK + SOAK_TIMEOUT_MARGIN))


@pytest.fixture(scope="session", autouse=True)
def _require_root():
    assert os.geteuid() == 0, "the chaos suite builds network namespaces and must run as root"


def chaos_lab(count: int) -> Iterator[Chaos]:
    """A swarm of `count` managers and the untouched workers, with the clients' services
    and the workers' tasks, as a fixture's body: yields its Chaos, then removes everything."""
    lab = Lab(count + tasks.WORKERS, coveyd_args=("--insecure-registry", REGISTRY)).up()
    managers, workers = lab.hosts[:count], lab.hosts[count:]
    disks: dict[str, LoopDisk] = {}
    chaos = registry = None
    try:
        for host in managers:
            disks[host.name] = LoopDisk(host.data_dir / "raft", RAFT_DISK)
        registry = Registry(lab.dir / "registry", host=managers[0].addr, netns=managers[0].netns).start()
        build_and_push(lab.dir / "images", registry.address, [TestImage("covey/busybox", "1", {}, {"Cmd": ["sh"]})],
                       prefix=registry.in_netns())
        lab.form_swarm(HEARTBEAT, managers=count)
        healthy(lab, "host1", tuple(h.name for h in managers))
        stub = control(str(managers[0].socket))
        for process in range(CLIENTS):
            create_service(stub, f"chaos-s{process}")
        chaos = Chaos(lab, managers, disks, workers, tasks.start_tasks(lab, managers[0], workers))
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
        if registry is not None:
            registry.stop()
        dump_logs(lab)


@pytest.fixture(scope="module")
def chaos():
    yield from chaos_lab(MANAGERS)
