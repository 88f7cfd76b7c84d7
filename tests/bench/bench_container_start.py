"""Container start latency: from "start this task" (Executor.run: prepare + start, image
already pulled) to running, p50/p99 over N containers, beside bare `runc run -d` of the same
bundle in the same run, interleaved so both see the same machine noise.

    python3 tests/bench/bench_container_start.py [-n 50] [--out PATH]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import benchpaths  # noqa: F401  (first: puts the project on sys.path)

from tests.support.images import build_and_push  # noqa: E402
from tests.support.registry import Registry  # noqa: E402
from worker.executor import ContainerConfig, Executor, ExecutorSettings  # noqa: E402
from worker.executor.executor import remove_cgroup_parent  # noqa: E402
from worker.executor.rootfs import unmount_all  # noqa: E402


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * len(s) + 0.5) - 1))]


def bare_bundle(ex: Executor, name: str, dest: Path) -> dict:
    """The executor's bundle for `name`, made standalone: a private copy of the root and of
    the files it binds, so bare runc runs exactly that container config."""
    cdir = ex.containers_dir / ex.cid(name)
    spec = json.loads((cdir / "config.json").read_text())
    dest.mkdir(parents=True)
    subprocess.run(["cp", "-a", str(cdir / "rootfs"), str(dest / "rootfs")], check=True)
    for m in spec["mounts"]:
        if m["type"] == "bind" and m["source"].startswith(str(cdir)):
            target = dest / Path(m["source"]).name
            shutil.copy(m["source"], target)
            m["source"] = str(target)
    spec["root"]["path"] = str(dest / "rootfs")
    return spec


async def bench(n: int, workdir: Path, run_id: str) -> dict:
    reg = Registry(workdir / "registry").start()
    ex = Executor(ExecutorSettings(
        data_dir=workdir / "data", run_dir=workdir / "run", runc_root=workdir / "runc",
        cgroup_parent=f"covey-bench-{run_id}", prefix=f"cb{run_id}-"))
    bare_root, bare_parent = workdir / "bare-runc", f"covey-bench-{run_id}-bare"
    bare_ids: list[str] = []
    try:
        build_and_push(workdir / "images", reg.address)
        image = f"{reg.address}/covey/busybox:1"

        def cfg(name):
            return ContainerConfig(name=name, image=image, command=["sleep", "600"], stop_grace_period=0.1)

        await ex.run(cfg("warmup"))                      # pulls and unpacks the image once
        spec = bare_bundle(ex, "warmup", workdir / "bare")
        await ex.remove("warmup", force=True)
        executor_ms, bare_ms = [], []
        for i in range(n):
            t0 = time.perf_counter()
            info = await ex.run(cfg(f"c{i}"))
            executor_ms.append((time.perf_counter() - t0) * 1000)
            assert info.status == "running", info
            cid = f"cb{run_id}-bare{i}"
            spec["linux"]["cgroupsPath"] = f"/{bare_parent}/{cid}"
            (workdir / "bare" / "config.json").write_text(json.dumps(spec))
            t0 = time.perf_counter()
            subprocess.run(["runc", "--root", str(bare_root), "run", "-d", "--bundle",
                            str(workdir / "bare"), cid], check=True, stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
            bare_ms.append((time.perf_counter() - t0) * 1000)
            bare_ids.append(cid)
        res = {"n": n}
        for label, xs in (("executor", executor_ms), ("bare_runc", bare_ms)):
            res[label] = {"p50_ms": round(pct(xs, 50), 1), "p99_ms": round(pct(xs, 99), 1),
                          "mean_ms": round(statistics.mean(xs), 1)}
        res["ratio_p50"] = round(res["executor"]["p50_ms"] / res["bare_runc"]["p50_ms"], 2)
        res["ratio_p99"] = round(res["executor"]["p99_ms"] / res["bare_runc"]["p99_ms"], 2)
        return res
    finally:
        for cid in bare_ids:
            subprocess.run(["runc", "--root", str(bare_root), "delete", "-f", cid],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        remove_cgroup_parent(bare_parent)
        await ex.destroy_all()
        reg.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=50)
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    assert os.geteuid() == 0, "runs real runc containers: run as root"
    run_id = uuid.uuid4().hex[:6]
    workdir = Path(tempfile.mkdtemp(prefix=f"covey-bench-{run_id}-"))
    try:
        res = asyncio.run(bench(args.n, workdir, run_id))
    finally:
        unmount_all(workdir)
        shutil.rmtree(workdir, ignore_errors=True)
    res.update(benchmark="container_start", time=time.time(), cpus=os.cpu_count())
    out = Path(args.out or Path(tempfile.gettempdir()) / "covey-bench" /
               f"container_start-{int(time.time())}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2))
    e, b = res["executor"], res["bare_runc"]
    print(f"container start over {res['n']} containers (image already pulled):")
    print(f"  executor  (prepare+start -> running): p50 {e['p50_ms']} ms  p99 {e['p99_ms']} ms")
    print(f"  bare runc run -d, same bundle:        p50 {b['p50_ms']} ms  p99 {b['p99_ms']} ms")
    print(f"  ratio executor/bare: p50 {res['ratio_p50']}x  p99 {res['ratio_p99']}x")
    print(f"result written to {out}")


if __name__ == "__main__":
    main()
