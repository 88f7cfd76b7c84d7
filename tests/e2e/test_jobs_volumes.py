"""Jobs, volumes and private registries on a lab swarm with real containers: a replicated job
completes N times at most M at a time and reruns on update; `covey volume` on a node, a volume
in use refused; a service pulls from an htpasswd-protected registry only with
--with-registry-auth, and the credentials reach no disk."""
import json
import sys

import pytest

from deploy.lab import REPO
from tests.e2e.swarmtools import REGISTRY, swarm_with_registry
from tests.support.images import build_and_push, standard_images
from tests.support.poll import wait_until
from tests.support.registry import Registry

PRIVATE_PORT = 5001          # the htpasswd registry, beside the open one on host1
USER, PASSWORD = "alice", "pr1vate-Pa55word"
JOB_TIMEOUT = 60.0
SETTLE = 30.0


@pytest.fixture(scope="module")
def lab():
    private = f"{REGISTRY.split(':')[0]}:{PRIVATE_PORT}"
    with swarm_with_registry(2, coveyd_args=("--insecure-registry", private)) as lab:
        first = lab.hosts[0]
        registry = Registry(lab.dir / "private-registry", users={USER: PASSWORD}, host=first.addr,
                            port=PRIVATE_PORT, netns=first.netns).start()
        try:
            httpd = [i for i in standard_images() if i.repo == "covey/httpd" and i.tag == "v1"]
            build_and_push(lab.dir / "private-images", registry.address, httpd, creds=(USER, PASSWORD),
                           prefix=registry.in_netns())
            lab.private_registry = registry.address
            yield lab
        finally:
            registry.stop()


def covey(lab, *args, host=0, **kw):
    return lab.covey(lab.hosts[host], *args, **kw)


def tasks(lab, service):
    return json.loads(covey(lab, "service", "ps", "--format", "json", service).stdout)


def job_containers(lab, service) -> list[dict]:
    """The job's containers on every host, as `covey container ls -a` shows them."""
    out = []
    for i in range(len(lab.hosts)):
        listed = json.loads(covey(lab, "container", "ls", "-a", "--format", "json", host=i).stdout)
        out += [c for c in listed if c.get("name", "").startswith(f"{service}.")]
    return out


def most_at_once(containers) -> int:
    edges = sorted([(c["started_at"], 1) for c in containers] + [(c["finished_at"], -1) for c in containers])
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


def test_replicated_job_completes_n_times_m_at_a_time_and_reruns(lab):
    created = covey(lab, "service", "create", "--name", "batch", "--mode", "replicated-job", "--replicas", "4",
                    "--max-concurrent", "2", "--converge-timeout", f"{JOB_TIMEOUT:g}s",
                    f"{REGISTRY}/covey/busybox:1", "sh", "-c", "sleep 1")
    assert "job complete: 4 out of 4 tasks" in created.stdout
    ls = [line.split() for line in covey(lab, "service", "ls").stdout.splitlines() if " batch " in line]
    assert ls[0][1:7] == ["batch", "replicated", "job", "0/0", "(4/4", "completed)"]
    done = tasks(lab, "batch")
    assert sorted(int(t["slot"]) for t in done) == [1, 2, 3, 4]
    assert {(t["status"]["state"], t["desired_state"]) for t in done} == {("COMPLETE", "COMPLETE")}
    ran = job_containers(lab, "batch")
    assert len(ran) == 4 and all(c["exited"] and not c.get("exit_code") for c in ran)
    assert 1 <= most_at_once(ran) <= 2
    assert "Complete" in covey(lab, "service", "ps", "batch").stdout

    rerun = covey(lab, "service", "update", "--force", "--converge-timeout", f"{JOB_TIMEOUT:g}s", "batch")
    assert "job complete: 4 out of 4 tasks" in rerun.stdout
    after = tasks(lab, "batch")
    assert len(after) == 8 and sum(t["status"]["state"] == "COMPLETE" for t in after) == 8
    covey(lab, "service", "rm", "batch")


def test_volumes_on_a_node_and_one_in_use_refused(lab):
    node = 1  # host2
    assert covey(lab, "volume", "create", "--label", "team=db", "data1", host=node).stdout.strip() == "data1"
    [view] = json.loads(covey(lab, "volume", "inspect", "data1", host=node).stdout)
    assert (view["Name"], view["Driver"], view["Scope"], view["Labels"]) == ("data1", "local", "local",
                                                                            {"team": "db"})
    assert view["Mountpoint"].startswith(str(lab.hosts[node].data_dir))
    covey(lab, "service", "create", "--name", "keeper", "--constraint", "node.hostname==host2",
          "--mount", "type=volume,source=busy,target=/data", f"{REGISTRY}/covey/httpd:v1")
    listed = covey(lab, "volume", "ls", host=node).stdout.splitlines()
    assert listed[0].split() == ["DRIVER", "VOLUME", "NAME"]
    assert {tuple(line.split()) for line in listed[1:]} >= {("local", "data1"), ("local", "busy")}
    refused = covey(lab, "volume", "rm", "busy", host=node, check=False)
    assert refused.returncode == 1 and "volume busy is in use by container(s)" in refused.stderr
    assert covey(lab, "volume", "rm", "data1", host=node).stdout.strip() == "data1"

    covey(lab, "service", "rm", "keeper")
    wait_until(lambda: covey(lab, "volume", "rm", "busy", host=node, check=False).returncode == 0,
               SETTLE, 0.3, "the volume freed once its container is gone")
    assert covey(lab, "volume", "ls", "-q", host=node).stdout.split() == []


def login(lab, config_dir) -> None:
    import subprocess
    subprocess.run([sys.executable, "-m", "covey.cli.main", "login", "-u", USER, "--password-stdin",
                    lab.private_registry], input=PASSWORD, text=True, check=True, capture_output=True,
                   cwd=REPO, env=_env(config_dir), timeout=30)


def _env(config_dir):
    import os
    return {**os.environ, "DOCKER_CONFIG": str(config_dir)}


def task_errors(lab, service) -> set[str]:
    return {t["status"].get("err", "") for t in tasks(lab, service)}


def test_private_registry_needs_with_registry_auth(lab, tmp_path):
    image = f"{lab.private_registry}/covey/httpd:v1"
    covey(lab, "service", "create", "-d", "--name", "private", "--restart-delay", "1s", image)
    refused = wait_until(lambda: [e for e in task_errors(lab, "private") if e], SETTLE, 0.3, "a pull error")
    assert any("the registry refused the credentials" in e or "unauthorized" in e for e in refused), refused

    login(lab, tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert list(config["auths"]) == [lab.private_registry]
    covey(lab, "service", "update", "--with-registry-auth", "private", env=_env(tmp_path))
    wait_until(lambda: any(t["status"].get("state") == "RUNNING" for t in tasks(lab, "private")),
               SETTLE, 0.3, "the task to run with the credentials")
    covey(lab, "service", "create", "--name", "private2", "--with-registry-auth", image, env=_env(tmp_path))

    inspected = covey(lab, "service", "inspect", "private").stdout
    assert PASSWORD not in inspected and "registry_auth" not in inspected
    for host in lab.hosts:  # not in any host's state, logs or run files
        for path in host.dir.rglob("*"):
            if path.is_file() and not path.is_symlink() and path.stat().st_size < 64 << 20:
                assert PASSWORD.encode() not in path.read_bytes(), path
