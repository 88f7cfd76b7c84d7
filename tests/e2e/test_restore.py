"""`covey swarm restore` in the lab: a swarm of host1 and host2 (managers) and host3 and host4
(workers) runs a service and a stack (a published port on an overlay network, a secret and a
config) from the lab registry and takes writes while a backup is taken; every coveyd of it
stops; host5, outside the swarm, refuses a wrong passphrase and a corrupt file and stays
unchanged, then restores the backup on its own address. The old managers are gone, the stack,
its network, secret and config are back, the tasks converge on host5 and the published port
answers through host5's address from outside the swarm; host3 rejoins with the restored token,
host4 with its certificate, and the port answers through each of them too."""
import json
import secrets
import threading
from pathlib import Path

import pytest

from covey.errors import NOT_IN_SWARM
from tests.e2e.swarmtools import REGISTRY, swarm_with_registry, wait_state
from tests.support.poll import wait_until

PASSPHRASE = "e2e restore passphrase"
REPLICAS = 4
CONVERGE = 90.0   # s: Down after 4 heartbeats past the new leader's grace, then new tasks pulled and started
WRITES = 200      # at most, by the writer while the backup is taken
WHOAMI = f"{REGISTRY}/covey/whoami:1"
STACK, PORT = "shop", 8090
SECRET = f"covey-e2e-restore-secret-{secrets.token_hex(8)}"    # found nowhere else
CONFIG = "restored config\n"
MESH = 30.0       # s: a (re)joined node's routing mesh programmed for the published port
FETCH_TIMEOUT = "5"   # s: one request from outside the swarm


def compose(directory: Path) -> Path:
    """The stack's file: whoami publishing PORT on the overlay `front`, reading the secret
    `token` and the config `motd` (their data in files beside it)."""
    (directory / "token.txt").write_text(SECRET)
    (directory / "motd.txt").write_text(CONFIG)
    path = directory / "compose.yml"
    path.write_text(f"""
services:
  web:
    image: {WHOAMI}
    deploy: {{replicas: 2}}
    ports: ["{PORT}:8080"]
    networks: [front]
    secrets: [token]
    configs: [{{source: motd, target: /etc/motd}}]
networks:
  front: {{driver: overlay}}
secrets:
  token: {{file: {directory / "token.txt"}}}
configs:
  motd: {{file: {directory / "motd.txt"}}}
""")
    return path


@pytest.fixture(scope="module")
def lab():
    with swarm_with_registry(5, members=4, managers=2) as lab:
        lab.start_resolver({})          # its namespace is the outside client's
        yield lab


def hosts(lab, *names: str):
    return [lab.hosts[int(n.removeprefix("host")) - 1] for n in names]


def nodes(lab, host) -> list[dict]:
    return json.loads(lab.covey(host, "node", "ls", "--format", "json").stdout)


def running_by_host(lab, host, service: str) -> dict:
    names = {n["id"]: n["description"]["hostname"] for n in nodes(lab, host)}
    counts: dict[str, int] = {}
    for t in json.loads(lab.covey(host, "service", "ps", "--format", "json", service).stdout):
        if t.get("desired_state", "NEW") in ("RUNNING", "READY") and t["status"].get("state") == "RUNNING":
            where = names.get(t["node_id"], t["node_id"])  # a removed node: its ID
            counts[where] = counts.get(where, 0) + 1
    return counts


def label_while(lab, host, target: str, stop: threading.Event, done: list) -> None:
    """Write to the swarm (a node label counter=i) until `stop`, WRITES at most."""
    for i in range(WRITES):
        if stop.is_set():
            break
        lab.covey(host, "node", "update", "--label-add", f"counter={i}", target)
        done.append(i)


def not_in_a_swarm(lab, host) -> bool:
    """The node says it is in no swarm, and its data dir holds nothing of one."""
    ls = lab.covey(host, "node", "ls", check=False)
    state = [p for p in ("swarm.json", "certificates", "raft") if (host.data_dir / p).exists()]
    return ls.returncode == 1 and NOT_IN_SWARM in ls.stderr and not state


@pytest.fixture(scope="module")
def backup(lab) -> dict:
    """The backup file, taken on host1 during writes; then every coveyd of the swarm stops."""
    host1 = lab.hosts[0]
    work = lab.dir / "restore"
    work.mkdir()
    (work / "pass").write_text(PASSPHRASE + "\n")
    (work / "wrong").write_text("not it\n")
    lab.covey(host1, "service", "create", "--name", "web", "--replicas", str(REPLICAS), f"{REGISTRY}/covey/httpd:v1")
    lab.covey(host1, "stack", "deploy", "-c", str(compose(work)), "--converge-timeout", f"{int(CONVERGE)}s", STACK,
              timeout=CONVERGE + 30)
    spec = json.loads(lab.covey(host1, "service", "inspect", "web").stdout)[0]["spec"]
    before = {n["description"]["hostname"]: n["id"] for n in nodes(lab, host1)}
    token = lab.covey(host1, "swarm", "join-token", "-q", "worker").stdout.strip()
    stop, done = threading.Event(), []
    writer = threading.Thread(target=label_while, args=(lab, host1, "host3", stop, done))
    writer.start()
    try:
        wait_until(lambda: done, 30, 0.1, "the writer's first write")
        before_backup = len(done)
        made = lab.covey(host1, "swarm", "backup", "-o", str(work / "swarm.cvyb"),
                         "--passphrase-file", str(work / "pass")).stdout
    finally:
        stop.set()
        writer.join()
    assert len(done) > before_backup, "writes went on while the backup was taken"
    for host in hosts(lab, "host1", "host2", "host3", "host4"):
        lab.stop_coveyd(host)
    index = next(line for line in made.splitlines() if line.startswith("Raft index"))
    return {"file": work / "swarm.cvyb", "pass": work / "pass", "wrong": work / "wrong", "spec": spec,
            "nodes": before, "token": token, "index": index, "work": work}


def restore(lab, host, path: Path, passfile: Path, check: bool = False):
    return lab.covey(host, "swarm", "restore", str(path), "--advertise-addr", host.addr,
                     "--passphrase-file", str(passfile), check=check, timeout=120)


def test_a_wrong_passphrase_and_a_corrupt_file_are_refused_and_host5_is_unchanged(lab, backup):
    host5 = lab.hosts[4]
    whole = backup["file"].read_bytes()
    corrupt = backup["work"] / "corrupt.cvyb"
    corrupt.write_bytes(whole[:-1] + bytes([whole[-1] ^ 1]))
    wrong = restore(lab, host5, backup["file"], backup["wrong"])
    assert wrong.returncode == 1 and "wrong passphrase" in wrong.stderr, wrong.stderr
    assert not_in_a_swarm(lab, host5)
    damaged = restore(lab, host5, corrupt, backup["pass"])
    assert damaged.returncode == 1 and "is corrupt" in damaged.stderr, damaged.stderr
    assert not_in_a_swarm(lab, host5)


def test_restore_on_host5_brings_the_swarm_back_on_its_address(lab, backup):
    host5 = lab.hosts[4]
    done = restore(lab, host5, backup["file"], backup["pass"], check=True).stdout
    assert f"is its only manager, at {host5.addr}:4242" in done and backup["index"] in done, done
    assert f"1 cluster, 4 nodes, 2 services, {REPLICAS + 2} tasks, 2 networks" in done, done
    old = backup["nodes"]
    assert "Removed the old managers (their certificates are denied): " in done
    assert {old["host1"], old["host2"]} == set(done.split("denied): ")[1].splitlines()[0].split(", "))
    table = {n["description"]["hostname"]: n for n in nodes(lab, host5)}
    assert sorted(table) == ["host3", "host4", "host5"]
    assert table["host5"]["id"] not in old.values() and table["host5"]["manager_status"]["leader"]
    assert (table["host3"]["id"], table["host4"]["id"]) == (old["host3"], old["host4"])
    assert json.loads(lab.covey(host5, "service", "inspect", "web").stdout)[0]["spec"] == backup["spec"]
    assert lab.covey(host5, "swarm", "join-token", "-q", "worker").stdout.strip() == backup["token"]
    wait_state(lab, host5, "host3", "DOWN", CONVERGE)
    wait_until(lambda: running_by_host(lab, host5, "web") == {"host5": REPLICAS}, CONVERGE, 0.5,
               f"web's {REPLICAS} tasks running on host5")


def get(lab, addr: str) -> str | None:
    """The hostname of the task that answered PORT through `addr`, asked from outside the swarm."""
    asked = lab.run_in(lab.resolver, ["timeout", FETCH_TIMEOUT, "busybox", "wget", "-qO-",
                                      f"http://{addr}:{PORT}/cgi-bin/id"])
    return asked.stdout.split()[0] if asked.returncode == 0 and asked.stdout.strip() else None


def stack_tasks(lab, host) -> list[dict]:
    return [t for t in json.loads(lab.covey(host, "service", "ps", "--format", "json", f"{STACK}_web").stdout)
            if t.get("desired_state") == "RUNNING" and t["status"].get("state") == "RUNNING"]


def test_the_stack_its_network_secret_and_config_are_back_and_its_port_answers_on_host5(lab, backup):
    host5 = lab.hosts[4]
    assert lab.covey(host5, "stack", "ls").stdout.split() == ["NAME", "SERVICES", STACK, "1"]
    assert f"*:{PORT}->8080/tcp" in lab.covey(host5, "stack", "services", STACK).stdout
    networks = lab.covey(host5, "network", "ls").stdout.split()
    assert f"{STACK}_front" in networks and "ingress" in networks
    listed = lab.covey(host5, "secret", "ls").stdout + lab.covey(host5, "secret", "inspect", f"{STACK}_token").stdout
    assert f"{STACK}_token" in listed and SECRET not in listed, "the secret is back, its data never shown"
    assert f"{STACK}_motd" in lab.covey(host5, "config", "ls").stdout
    ingress = [a["addr"] for n in nodes(lab, host5) for a in n.get("attachments", [])]
    assert len(ingress) == 3 == len(set(ingress)), f"one ingress address a node, host5's new: {ingress}"
    wait_until(lambda: running_by_host(lab, host5, f"{STACK}_web") == {"host5": 2}, CONVERGE, 0.5,
               "the stack's 2 tasks running on host5")
    for task in stack_tasks(lab, host5):
        assert lab.covey(host5, "container", "exec", task["id"], "cat", "/run/secrets/token").stdout == SECRET
        assert lab.covey(host5, "container", "exec", task["id"], "cat", "/etc/motd").stdout == CONFIG
    backends = {t["id"][:12] for t in stack_tasks(lab, host5)}     # the default hostnames
    assert wait_until(lambda: get(lab, host5.addr), MESH, 0.3, f"port {PORT} through host5") in backends


def test_an_old_worker_rejoins_with_the_restored_token_and_takes_tasks(lab, backup):
    host3, host5 = lab.hosts[2], lab.hosts[4]
    lab.start_coveyd(host3)
    lab.covey(host3, "swarm", "leave", "--force")
    lab.covey(host3, "swarm", "join", "--token", backup["token"], f"{host5.addr}:4242")
    wait_until(lambda: [n for n in nodes(lab, host5) if n["description"]["hostname"] == "host3"
                        and n["status"].get("state") == "READY"], 30, 0.3, "host3 back, Ready")
    lab.covey(host5, "service", "scale", "web=8")
    wait_until(lambda: running_by_host(lab, host5, "web") == {"host5": REPLICAS, "host3": 8 - REPLICAS},
               CONVERGE, 0.5, "web's new tasks on host3")
    backends = {t["id"][:12] for t in stack_tasks(lab, host5)}
    assert wait_until(lambda: get(lab, host3.addr), MESH, 0.3, f"port {PORT} through host3") in backends


def test_an_old_worker_rejoins_with_its_certificate_and_no_token(lab, backup):
    host4, host5 = lab.hosts[3], lab.hosts[4]
    lab.start_coveyd(host4)
    joined = lab.covey(host4, "swarm", "join", f"{host5.addr}:4242")
    assert "joined a swarm as a worker" in joined.stdout
    wait_state(lab, host5, "host4", "READY", 30)
    assert {n["id"] for n in nodes(lab, host5) if n["description"]["hostname"] == "host4"} == {backup["nodes"]["host4"]}
    wait_until(lambda: not [c for c in json.loads(lab.covey(host4, "container", "ls", "--format", "json").stdout)
                            if c["status"] == "running"], 30, 0.3, "host4's tasks of the old swarm to stop")
    backends = {t["id"][:12] for t in stack_tasks(lab, host5)}
    assert wait_until(lambda: get(lab, host4.addr), MESH, 0.3, f"port {PORT} through host4") in backends
