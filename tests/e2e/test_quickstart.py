"""The README's main job, as deploy/quickstart.sh runs it (without the installs): a lab swarm
with the example registry and stack, answered through the routing mesh; `lab.py down` then
ends every process it started and removes every namespace it made."""
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


def test_the_example_stack_answers_through_the_mesh_and_goes_away_cleanly():
    prefix = "cq" + secrets.token_hex(2)
    parents = [cgroup_parent_for(DEFAULT_BASE / prefix / f"host{i}" / "data") for i in (1, 2)]
    try:
        result = lab_py("swarm", "--hosts", "2", "--prefix", prefix, "--example")
        assert result.returncode == 0, result.stderr[-3000:]
        out = result.stdout
        assert "Creating network shop_default" in out and "Creating service shop_web" in out
        services = out[out.index("$ covey stack services shop"):].splitlines()[2:4]
        replicas = {row.split()[1]: row.split()[3] for row in services}
        assert replicas == {"shop_api": "3/3", "shop_web": "2/2"}, services
        assert "*:8080->8080/tcp" in out
        answer = out[out.index("through the routing mesh"):].splitlines()[1]
        assert answer.startswith("front ") and "asked api, which said: " in answer, answer
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
