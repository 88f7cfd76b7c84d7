"""Logs: stream tags, timestamps, rotation by size and count, tail, since and follow."""
import asyncio
import os
import time

from worker.executor import ContainerConfig
from worker.executor.logfile import LOG_NAME


def sh(script):
    return ["/bin/sh", "-c", script]


def test_streams_and_timestamps(executor, run, ref, names):
    name = names()
    before = time.time()
    run(executor.run(ContainerConfig(name=name, image=ref("covey/busybox:1"),
                                     entrypoint=sh("echo to-out; echo to-err >&2"))))
    run(executor.wait(name, 10))

    async def entries():
        return [e async for e in executor.logs(name)]
    got = run(entries())
    assert sorted((e.stream, e.line) for e in got) == [("stderr", "to-err\n"), ("stdout", "to-out\n")]
    assert all(before - 1 <= e.time <= time.time() for e in got)


def test_rotation_tail_and_since(executor, run, ref, names):
    name = names()
    run(executor.run(ContainerConfig(
        name=name, image=ref("covey/busybox:1"), log_max_size=4096, log_max_files=3,
        entrypoint=sh("i=0; while [ $i -lt 500 ]; do i=$((i+1)); echo line-$i; done"))))
    run(executor.wait(name, 20))
    cdir = executor.containers_dir / executor.cid(name)
    files = sorted(f for f in os.listdir(cdir) if f.startswith(LOG_NAME))
    assert files == [LOG_NAME, f"{LOG_NAME}.1", f"{LOG_NAME}.2"]
    assert all(os.path.getsize(cdir / f) <= 4096 for f in files)

    async def lines(**kw):
        return [e async for e in executor.logs(name, **kw)]
    kept = run(lines())
    nums = [int(e.line.strip().split("-")[1]) for e in kept]
    assert nums == list(range(nums[0], 501)) and nums[0] > 1, "oldest rotated away, rest in order"
    assert [e.line for e in run(lines(tail=2))] == ["line-499\n", "line-500\n"]
    cut = kept[len(kept) // 2].time
    assert all(e.time >= cut for e in run(lines(since=cut)))
    assert len(run(lines(since=cut))) < len(kept)


def test_follow_sees_lines_as_they_come_and_ends_at_exit(executor, run, ref, names):
    name = names()
    run(executor.run(ContainerConfig(
        name=name, image=ref("covey/busybox:1"),
        entrypoint=sh("echo first; "
                      "while [ ! -f /tmp/go ]; do sleep 0.05; done; echo second"))))

    async def follow():
        seen = []
        gen = executor.logs(name, follow=True)
        first = await asyncio.wait_for(gen.__anext__(), 10)
        seen.append(first.line)
        # the container is still running: tell it to go on, then follow to its end
        await executor.runc.exec(executor.cid(name), ["touch", "/tmp/go"], 10)
        async for e in gen:
            seen.append(e.line)
        return seen
    assert run(asyncio.wait_for(follow(), 20)) == ["first\n", "second\n"]
    assert run(executor.inspect(name)).status == "exited"


def test_no_pipe_kept_by_the_daemon(executor, run, ref, names):
    """The daemon holds no fd to the container's stdio: its own fds stay the same."""
    name = names()
    fds_before = set(os.listdir("/proc/self/fd"))
    run(executor.run(ContainerConfig(name=name, image=ref("covey/busybox:1"),
                                     command=["sleep", "600"], stop_grace_period=0.2)))
    leaked = set(os.listdir("/proc/self/fd")) - fds_before
    assert not leaked, [os.readlink(f"/proc/self/fd/{fd}") for fd in leaked
                        if os.path.exists(f"/proc/self/fd/{fd}")]
