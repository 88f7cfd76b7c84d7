"""The README's main job, as deploy/quickstart.sh runs it (without the installs): a lab swarm
with the example registry and service; `lab.py down` then ends every process it started."""
import json
import os
import secrets
import subprocess
import sys

from deploy.lab import DEFAULT_BASE, REPO, _alive
from tests.e2e.swarmtools import cgroup_dirs
from worker.executor.executor import cgroup_parent_for


def lab_py(*args, timeout=300):
    return subprocess.run([sys.executable, "deploy/lab.py", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


def test_the_example_swarm_runs_web_on_every_host_and_goes_away_cleanly():
    prefix = "cq" + secrets.token_hex(2)
    parents = [cgroup_parent_for(DEFAULT_BASE / prefix / f"host{i}" / "data") for i in (1, 2)]
    try:
        result = lab_py("swarm", "--hosts", "2", "--prefix", prefix, "--example")
        assert result.returncode == 0, result.stderr[-3000:]
        ps = result.stdout[result.stdout.index("$ covey service ps web"):]
        rows = [line.split() for line in ps.splitlines()[2:] if line.strip() and line.split()[1].startswith("web.")]
        assert sorted(r[1] for r in rows) == ["web.1", "web.2"] and {r[5] for r in rows} == {"Running"}
        assert sorted(r[3] for r in rows) == ["host1", "host2"], "one task per host"
        state = json.loads((DEFAULT_BASE / prefix / "lab.json").read_text())
        pids = list(state["pids"].values()) + list(state["helper_pids"].values())
        assert len(pids) == 3 and all(_alive(pid) for pid in pids)
        assert all(cgroup_dirs(parent) for parent in parents), "the containers' cgroups are where we look"
    finally:
        down = lab_py("down", prefix)
    assert down.returncode == 0, down.stderr
    assert not any(_alive(pid) for pid in pids)
    assert not [ns for ns in os.listdir("/run/netns") if ns.startswith(prefix)]
    assert not [d for parent in parents for d in cgroup_dirs(parent)]
