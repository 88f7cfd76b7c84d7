"""Fixtures for the executor's e2e tests: one registry with the test images and one executor
for the whole session, everything named with a per-run prefix and removed at the end."""
import asyncio
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from tests.e2e.executor.helpers_executor import RUN_ID, settings_for
from tests.support.images import build_and_push
from tests.support.registry import Registry
from worker.executor import Executor
from worker.executor.rootfs import unmount_all


@pytest.fixture(scope="session")
def loop():
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield loop
    loop.close()


@pytest.fixture(scope="session")
def run(loop):
    """Run a coroutine on the session's loop (the executor's monitors live there)."""
    return loop.run_until_complete


@pytest.fixture(scope="session")
def workdir():
    path = Path(tempfile.mkdtemp(prefix=f"covey-ex-{RUN_ID}-"))
    yield path
    unmount_all(path)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def registry(workdir):
    reg = Registry(workdir / "registry").start()
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def images(registry, workdir):
    """{"covey/httpd:v1": digest, ...}, pushed to the session's registry."""
    return build_and_push(workdir / "images", registry.address)


@pytest.fixture(scope="session")
def ref(registry, images):
    def make(name: str) -> str:
        assert name in images or "@" in name, f"no test image {name}"
        return f"{registry.address}/{name}"
    return make


@pytest.fixture(scope="session")
def executor(workdir, run, images):
    ex = Executor(settings_for(workdir, "a"))
    yield ex
    run(ex.destroy_all())


@pytest.fixture
def names(executor, run, request):
    """Unique container names for a test; whatever is left of them is removed after it."""
    made = []
    base = request.node.name.replace("[", "-").replace("]", "").replace("_", "-")[-40:]

    def make(suffix: str = "") -> str:
        name = f"{base}{len(made)}{suffix}".lstrip("-")
        made.append(name)
        return name
    yield make
    for name in made:
        if (executor.containers_dir / executor.cid(name)).exists():
            run(executor.remove(name, force=True))


@pytest.fixture
def netns():
    """A network namespace made by the test (the caller's), with lo up; deleted after."""
    name = f"cx{RUN_ID}-ns{uuid.uuid4().hex[:4]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)
