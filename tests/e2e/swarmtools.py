"""Helpers for e2e tests that read a swarm's state through the CLI."""
import asyncio
import json
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from deploy.lab import Lab
from tests.support.images import TestImage, build_and_push, standard_images
from tests.support.poll import wait_until
from tests.support.registry import Registry
from worker.executor.runc import Runc

HEARTBEAT = "1s"  # short periods so that Down is seen in ~3 s
REGISTRY = "10.1.0.1:5000"  # on host1


@contextmanager
def swarm_with_registry(hosts: int = 3, coveyd_args: tuple = (), members: int | None = None,
                        managers: int = 1, heartbeat: str | None = HEARTBEAT,
                        extra_images: Callable[[Path], list[TestImage]] | None = None):
    """A lab swarm (host1 its manager, with the next `managers - 1` hosts) whose host1 also
    runs a registry with the test images. With `members`, only the first `members` hosts join;
    the others run coveyd outside the swarm. `heartbeat=None`: the product's default period.
    `extra_images(workdir)`: more images to push beside the standard ones (benches).
    At the end, no container of the lab is left running, whatever the tests did."""
    lab = Lab(hosts, coveyd_args=("--insecure-registry", REGISTRY, *coveyd_args)).up()
    registry = None
    try:
        first = lab.hosts[0]
        registry = Registry(lab.dir / "registry", host=first.addr, netns=first.netns).start()
        images = standard_images() + (extra_images(lab.dir / "extra-images") if extra_images else [])
        build_and_push(lab.dir / "images", registry.address, images, prefix=registry.in_netns())
        lab.form_swarm(heartbeat, managers=managers, members=members)
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


def caller_ip(seen: str) -> str:
    """The client address the whoami image answers: busybox httpd shows an IPv4 client as
    "[::ffff:10.0.0.8]"."""
    return seen.strip("[]").removeprefix("::ffff:")


def host_named(lab: Lab, name: str):
    """The lab host of a hostname ("host3")."""
    return lab.hosts[int(name.removeprefix("host")) - 1]


def answering_table(lab: Lab, via: str) -> dict | None:
    """node_table through the manager named `via`, or None while it cannot answer (no leader
    yet, or it is still starting)."""
    try:
        return node_table(lab, host_named(lab, via))
    except RuntimeError:
        return None


def manager_statuses(lab: Lab, via: str) -> dict | None:
    """hostname -> 'Leader' / 'Reachable' / 'Unreachable' / '' (worker), as `node ls` says."""
    nodes = answering_table(lab, via)
    return None if nodes is None else statuses_of(nodes)


def statuses_of(nodes: dict) -> dict:
    """manager_statuses of a node_table already read."""
    out = {}
    for name, node in nodes.items():
        ms = node.get("manager_status")
        if node.get("role") != "MANAGER":
            out[name] = ""
        elif ms.get("leader"):
            out[name] = "Leader"
        else:
            out[name] = ms.get("reachability", "UNKNOWN").capitalize()
    return out


def healthy(lab: Lab, via: str, managers: tuple[str, ...], timeout: float = 60.0) -> dict:
    """The swarm as seen from `via` once it has one leader, the other managers reachable and
    every node Ready; returns manager_statuses then."""
    seen = {}

    def check():
        try:
            nodes = node_table(lab, host_named(lab, via))
        except RuntimeError as error:     # no leader yet, or it is still starting: say which
            seen[via] = str(error).strip().splitlines()[-1:]
            return None
        statuses = statuses_of(nodes)
        seen.pop(via, None)
        if not all(m in statuses for m in managers):
            return None
        seen.update({name: (n["status"].get("state"), statuses[name]) for name, n in nodes.items()})
        ready = all(n["status"].get("state") == "READY" for n in nodes.values())
        roles = sorted(statuses[m] for m in managers)
        if ready and roles == ["Leader"] + ["Reachable"] * (len(managers) - 1):
            return statuses
        return None
    try:
        return wait_until(check, timeout, 0.3, f"a healthy swarm seen from {via}")
    except TimeoutError as exc:
        raise TimeoutError(f"{exc}; last seen: {seen}") from None


def dump_logs(lab: Lab, lines: int = 40) -> None:
    """Print the end of every host's coveyd log (pytest shows it when a test failed)."""
    for host in lab.hosts:
        if host.log_file.exists():
            tail = host.log_file.read_text().splitlines()[-lines:]
            print(f"----- {host.name} ({host.log_file})\n" + "\n".join(tail))


def runc_running(host) -> list:
    """The host's running containers as runc sees them (cheaper than the CLI, for cleanup;
    and what really runs, whatever its coveyd says)."""
    listed = asyncio.run(Runc(str(host.socket.parent / "runc")).list())  # lists again if one vanishes meanwhile
    return [c["id"] for c in listed if c["status"] == "running"]


def cgroup_dirs(parent: str) -> list[Path]:
    """The directories of a coveyd's cgroup parent, in every cgroup v1 hierarchy."""
    return [p for p in Path("/sys/fs/cgroup").glob(f"*/{parent}") if p.is_dir() and not p.is_symlink()]
