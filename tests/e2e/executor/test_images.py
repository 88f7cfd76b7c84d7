"""Pulling images from a real registry and running them; clean errors when a pull cannot work."""
import asyncio
import subprocess
import time

import pytest

from tests.e2e.executor.helpers_executor import output, settings_for
from tests.support.images import build_and_push, standard_images
from tests.support.poll import until
from tests.support.registry import Registry, free_port
from worker.executor import ContainerConfig, Executor, ImageError


def http_get(netns: str, url: str) -> str:
    # busybox wget -T segfaults: bound it with timeout instead
    res = subprocess.run(["ip", "netns", "exec", netns, "timeout", "3", "busybox", "wget", "-q",
                          "-O-", url], capture_output=True, text=True)
    return res.stdout if res.returncode == 0 else ""


def test_pull_and_run_http_server_in_callers_netns(executor, run, ref, names, netns):
    name = names()
    info = run(executor.run(ContainerConfig(name=name, image=ref("covey/httpd:v1"),
                                            netns=f"/var/run/netns/{netns}",
                                            stop_grace_period=0.5)))
    assert info.status == "running" and info.pid > 0
    page = run(until(lambda: http_get(netns, "http://127.0.0.1:8080/")))
    assert page == "covey httpd v1\n"
    listed = [c.name for c in run(executor.list())]
    assert name in listed


def test_pull_by_digest_runs_that_exact_image(executor, run, ref, images, names, netns):
    digest = images["covey/httpd:v2"]
    name = names()
    info = run(executor.run(ContainerConfig(name=name, image=ref(f"covey/httpd@{digest}"),
                                            netns=f"/var/run/netns/{netns}")))
    assert info.image_digest == digest
    assert run(until(lambda: http_get(netns, "http://127.0.0.1:8080/"))) == "covey httpd v2\n"


def test_concurrent_pulls_of_one_image_happen_once(workdir, run, ref):
    ex = Executor(settings_for(workdir, "pull"))
    async def five():
        return await asyncio.gather(*(ex.images.get(ref("covey/exit:1")) for _ in range(5)))
    got = run(five())
    assert ex.images.pulls == 1
    assert len({g.digest for g in got}) == 1 and got[0].rootfs.is_dir()
    run(ex.images.get(ref("covey/exit:1")))
    assert ex.images.pulls == 1, "a pulled image is not pulled again"


def test_missing_image_is_a_clear_error_and_leaves_nothing(executor, run, ref, names):
    name = names()
    with pytest.raises(ImageError, match="not found in the registry"):
        run(executor.prepare(ContainerConfig(name=name, image=ref("covey/httpd:v1")[:-2] + "v9")))
    assert not (executor.containers_dir / executor.cid(name)).exists()


def test_unreachable_registry_is_a_quick_clear_error(executor, run, names):
    start = time.monotonic()
    with pytest.raises(ImageError, match="unreachable"):
        run(executor.prepare(ContainerConfig(name=names(), image=f"127.0.0.1:{free_port()}/x/y:1")))
    assert time.monotonic() - start < 20


def test_bad_reference_is_rejected_before_any_pull(executor, run, names):
    with pytest.raises(ImageError, match="invalid image reference"):
        run(executor.prepare(ContainerConfig(name=names(), image="Bad Name:tag")))


def test_basic_auth_registry(workdir, run, executor, names):
    creds = ("covey", "s3cret-pass")
    reg = Registry(workdir / "auth-registry", users={creds[0]: creds[1]}).start()
    try:
        build_and_push(workdir / "auth-images", reg.address,
                       [i for i in standard_images() if i.repo == "covey/exit"], creds=creds)
        image = f"{reg.address}/covey/exit:1"
        with pytest.raises(ImageError, match="refused the credentials"):
            run(executor.prepare(ContainerConfig(name=names(), image=image)))
        name = names()
        run(executor.run(ContainerConfig(name=name, image=image, registry_auth=creds,
                                         env=["EXIT_CODE=5"])))
        assert run(executor.wait(name, 10)).exit_code == 5
        assert "exiting with 5" in run(output(executor, name))
    finally:
        reg.stop()
