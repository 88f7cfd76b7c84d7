"""Named volumes kept across containers, bind mounts (read-only too)."""
from tests.e2e.executor.helpers_executor import output
from worker.executor import ContainerConfig, Mount


def sh(script):
    return ["/bin/sh", "-c", script]


def test_named_volume_persists_across_containers(executor, run, ref, names):
    vol = f"vol-{names()}"
    first = names()
    run(executor.run(ContainerConfig(name=first, image=ref("covey/busybox:1"),
                                     mounts=[Mount("volume", "/data", vol)],
                                     entrypoint=sh("echo kept > /data/f; echo written"))))
    assert run(output(executor, first)) == "written\n"
    run(executor.remove(first))
    second = names()
    run(executor.run(ContainerConfig(name=second, image=ref("covey/busybox:1"),
                                     mounts=[Mount("volume", "/data", vol, read_only=True)],
                                     entrypoint=sh("cat /data/f; touch /data/g || echo ro"))))
    lines = run(output(executor, second)).splitlines()
    # stdout and stderr come through two pipes: their relative order is not kept
    assert lines[0] == "kept" and "ro" in lines and any("Read-only file system" in line for line in lines)
    assert vol in executor.volumes.list()
    executor.volumes.remove(vol)


def test_bind_mount(executor, run, ref, names, tmp_path):
    (tmp_path / "in.txt").write_text("from host\n")
    name = names()
    run(executor.run(ContainerConfig(name=name, image=ref("covey/busybox:1"),
                                     mounts=[Mount("bind", "/host", str(tmp_path))],
                                     entrypoint=sh("cat /host/in.txt; echo back > /host/out.txt"))))
    assert run(output(executor, name)) == "from host\n"
    assert (tmp_path / "out.txt").read_text() == "back\n"


def test_missing_bind_source_is_a_clear_error(executor, run, ref, names, tmp_path):
    import pytest

    from worker.executor import ExecutorError
    with pytest.raises(ExecutorError, match="bind source path does not exist"):
        run(executor.prepare(ContainerConfig(name=names(), image=ref("covey/busybox:1"),
                                             mounts=[Mount("bind", "/x", str(tmp_path / "no"))])))
