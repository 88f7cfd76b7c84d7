"""`covey stack deploy` on the lab (issue 15): real hosts, runc containers, overlay, registry.

One swarm for the module. A stack whose services talk by their short names across hosts over
the stack's default network; --resolve-image (the default, always) pins every tag to the lab
registry's digest, asked with skopeo by host1's manager, which reaches the registry where
this test's CLI could not; the same files again restart nothing; a change rolls only its
service; --prune; `stack rm` leaves nothing running or stored."""
import json
import subprocess

import pytest

from tests.e2e.swarmtools import REGISTRY, runc_running, swarm_with_registry
from tests.support.poll import wait_until

WHOAMI = f"{REGISTRY}/covey/whoami:1"
BUSYBOX = f"{REGISTRY}/covey/busybox:1"
FETCH_TIMEOUT = "5"          # seconds for one wget inside a container
CONVERGE = 90.0              # s: a deploy's wait for its services (images pulled on 3 hosts)
CLI_TIMEOUT = CONVERGE + 30  # s: one covey command
COMPOSE = f"""
services:
  web:
    image: {WHOAMI}
    deploy:
      replicas: 2
      placement: {{max_replicas_per_node: 1}}
      update_config: {{parallelism: 0, monitor: 1s}}
    environment: {{COLOR: blue}}
  client:
    image: {BUSYBOX}
    command: ["sleep", "86400"]
    deploy: {{mode: global}}
  extra:
    image: {BUSYBOX}
    command: ["sleep", "86400"]
"""


@pytest.fixture(scope="module")
def lab():
    with swarm_with_registry(3) as lab:
        yield lab


def covey(lab, *args, check: bool = True):
    return lab.covey(lab.hosts[0], *args, check=check, timeout=CLI_TIMEOUT)


def deploy(lab, tmp_path, text: str, *flags: str) -> subprocess.CompletedProcess:
    path = tmp_path / "compose.yml"
    path.write_text(text)
    return covey(lab, "stack", "deploy", "-c", str(path), *flags, "--converge-timeout", f"{int(CONVERGE)}s", "shop")


def tasks(lab, service: str) -> list[dict]:
    listed = json.loads(covey(lab, "service", "ps", "--format", "json", service).stdout)
    return [t for t in listed if t.get("desired_state") == "RUNNING" and t["status"].get("state") == "RUNNING"]


def host_of(lab, task: dict):
    nodes = json.loads(covey(lab, "node", "ls", "--format", "json").stdout)
    hostname = next(n["description"]["hostname"] for n in nodes if n["id"] == task["node_id"])
    return lab.hosts[int(hostname.removeprefix("host")) - 1]


def task_ids(lab, *services: str) -> set[str]:
    return {t["id"] for s in services for t in tasks(lab, s)}


@pytest.fixture(scope="module")
def shop(lab, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("shop")
    first = deploy(lab, tmp, COMPOSE)
    return tmp, first


def test_deploy_prints_dockers_lines_pins_digests_and_waits_for_every_service(lab, shop):
    _, first = shop
    lines = first.stdout.splitlines()
    assert lines[:4] == ["Creating network shop_default", "Creating service shop_client",
                         "Creating service shop_extra", "Creating service shop_web"]
    assert {f"verify: Service shop_{s} converged" for s in ("web", "client", "extra")} <= set(lines)
    assert len(tasks(lab, "shop_web")) == 2 and len(tasks(lab, "shop_client")) == len(lab.hosts)
    web = json.loads(covey(lab, "service", "inspect", "shop_web").stdout)[0]
    assert web["spec"]["task"]["container"]["image"].startswith(WHOAMI + "@sha256:")
    assert web["spec"]["labels"]["com.docker.stack.namespace"] == "shop"
    assert covey(lab, "stack", "ls").stdout.split() == ["NAME", "SERVICES", "shop", "3"]
    assert "shop_web" in covey(lab, "stack", "services", "shop").stdout
    assert covey(lab, "stack", "ps", "shop").stdout.count("Running") >= 2 + 1 + len(lab.hosts)


def test_services_reach_each_other_by_short_name_across_hosts(lab, shop):
    web_hosts = {host_of(lab, t).name for t in tasks(lab, "shop_web")}
    client = next(t for t in tasks(lab, "shop_client") if host_of(lab, t).name not in web_hosts)
    answer = lab.covey(host_of(lab, client), "container", "exec", client["id"], "timeout", FETCH_TIMEOUT,
                       "wget", "-qO-", "http://web:8080/cgi-bin/id").stdout
    web_names = {lab.covey(host_of(lab, t), "container", "exec", t["id"], "hostname").stdout.strip()
                 for t in tasks(lab, "shop_web")}
    assert answer.split()[0] in web_names, f"{answer!r} is not from a web task ({web_names})"


def test_the_same_files_again_restart_nothing(lab, shop):
    tmp, _ = shop
    before = task_ids(lab, "shop_web", "shop_client", "shop_extra")
    again = deploy(lab, tmp, COMPOSE)
    assert "Stack shop is up to date: nothing to change" in again.stdout
    assert not [line for line in again.stdout.splitlines() if line.startswith(("Creating", "Updating"))]
    assert task_ids(lab, "shop_web", "shop_client", "shop_extra") == before


def test_a_change_rolls_only_its_service_and_prune_removes_what_left_the_files(lab, shop):
    tmp, _ = shop
    others = task_ids(lab, "shop_client")
    web_before = task_ids(lab, "shop_web")
    changed = COMPOSE.replace("COLOR: blue", "COLOR: green").split("  extra:")[0]
    out = deploy(lab, tmp, changed, "--prune").stdout.splitlines()
    assert out[0] == "Removing service shop_extra"
    assert [line.split(" (id:")[0] for line in out if line.startswith(("Creating", "Updating"))] == [
        "Updating service shop_web"]
    assert task_ids(lab, "shop_client") == others
    web_after = task_ids(lab, "shop_web")
    assert len(web_after) == 2 and web_after.isdisjoint(web_before)
    assert "shop_extra" not in covey(lab, "service", "ls").stdout


def test_stack_rm_leaves_nothing(lab, shop):
    out = covey(lab, "stack", "rm", "shop").stdout
    assert "Removing service shop_web" in out and "Removing network shop_default" in out
    assert "shop" not in covey(lab, "stack", "ls").stdout
    assert "shop_" not in covey(lab, "service", "ls").stdout
    assert "shop_default" not in covey(lab, "network", "ls").stdout
    wait_until(lambda: not any(runc_running(h) for h in lab.hosts), 60, 0.5, "every container of the stack gone")


def test_a_bad_stack_is_refused_by_name_and_nothing_is_stored(lab, tmp_path):
    path = tmp_path / "bad.yml"
    path.write_text(f"services:\n  web:\n    image: {WHOAMI}\n    networks: [edge]\n"
                    "networks:\n  edge: {external: true}\n")
    bad = covey(lab, "stack", "deploy", "-c", str(path), "--resolve-image", "never", "bad", check=False)
    assert bad.returncode == 1 and "external network edge not found" in bad.stderr
    assert "bad" not in covey(lab, "stack", "ls").stdout and "bad_" not in covey(lab, "service", "ls").stdout


DEPS = f"""
services:
  db:
    image: {BUSYBOX}
    command: ["sh", "-c", "sleep 3; touch /tmp/ready; sleep 86400"]
    healthcheck: {{test: ["CMD-SHELL", "test -f /tmp/ready"], interval: 1s, retries: 30}}
  app:
    image: {BUSYBOX}
    command: ["sleep", "86400"]
    depends_on: {{db: {{condition: service_healthy}}}}
"""


def test_depends_on_service_healthy_starts_the_dependent_once_the_dependency_is_healthy(lab, tmp_path):
    path = tmp_path / "deps.yml"
    path.write_text(DEPS)
    covey(lab, "stack", "deploy", "-c", str(path), "-d", "deps")
    why = "waiting for deps_db to be healthy"
    wait_until(lambda: why in covey(lab, "stack", "ps", "--explain", "deps").stdout, 30, 0.3,
               "stack ps saying why app waits")
    assert not tasks(lab, "deps_app"), "app does not run before db is healthy"
    wait_until(lambda: tasks(lab, "deps_app"), 60, 0.5, "app running once db is healthy")
    (db,) = tasks(lab, "deps_db")
    (app,) = tasks(lab, "deps_app")
    assert int(app["status"]["timestamp_ns"]) >= int(db["status"]["timestamp_ns"])
    covey(lab, "stack", "rm", "deps")
    wait_until(lambda: not any(runc_running(h) for h in lab.hosts), 60, 0.5, "the deps stack's containers gone")
