"""Helpers for e2e tests that read a swarm's state through the CLI."""
import json
from contextlib import contextmanager
from pathlib import Path

from deploy.lab import Lab
from tests.support.images import build_and_push
from tests.support.poll import wait_until
from tests.support.registry import Registry

HEARTBEAT = "1s"  # short periods so that Down is seen in ~3 s
REGISTRY = "10.1.0.1:5000"  # on host1


@contextmanager
def swarm_with_registry(hosts: int = 3, coveyd_args: tuple = (), members: int | None = None):
    """A lab swarm (host1 its manager) whose host1 also runs a registry with the test images.
    With `members`, only the first `members` hosts join; the others run coveyd outside the
    swarm. At the end, no container of the lab is left running, whatever the tests did."""
    lab = Lab(hosts, coveyd_args=("--insecure-registry", REGISTRY, *coveyd_args)).up()
    registry = None
    try:
        first = lab.hosts[0]
        registry = Registry(lab.dir / "registry", host=first.addr, netns=first.netns).start()
        build_and_push(lab.dir / "images", registry.address, prefix=registry.in_netns())
        lab.form_swarm(HEARTBEAT, members=members)
        wanted = members or hosts
        wait_until(lambda: lab.covey(first, "node", "ls").stdout.count("Ready") == wanted, 30, 0.2,
                   f"{wanted} Ready")
        yield lab
    finally:
        lab.down()
        if registry:
            registry.stop()


def node_table(lab: Lab, host) -> dict:
    """hostname -> node as `covey node ls --format json` shows it."""
    nodes = json.loads(lab.covey(host, "node", "ls", "--format", "json").stdout)
    return {n["description"]["hostname"]: n for n in nodes}


def node_state(lab: Lab, host, hostname: str) -> str:
    node = node_table(lab, host).get(hostname)
    return node["status"].get("state", "UNKNOWN") if node else "ABSENT"


def wait_state(lab: Lab, manager, hostname: str, state: str, timeout: float = 30.0) -> None:
    wait_until(lambda: node_state(lab, manager, hostname) == state, timeout, 0.2,
               f"{hostname} to be {state}")


def dump_logs(lab: Lab, lines: int = 40) -> None:
    """Print the end of every host's coveyd log (pytest shows it when a test failed)."""
    for host in lab.hosts:
        if host.log_file.exists():
            tail = host.log_file.read_text().splitlines()[-lines:]
            print(f"----- {host.name} ({host.log_file})\n" + "\n".join(tail))




def cgroup_dirs(parent: str) -> list[Path]:
    """The directories of a coveyd's cgroup parent, in every cgroup v1 hierarchy."""
    return [p for p in Path("/sys/fs/cgroup").glob(f"*/{parent}") if p.is_dir() and not p.is_symlink()]
