"""Helpers for e2e tests that read a swarm's state through the CLI."""
import json

from lab import Lab, wait_until

HEARTBEAT = "1s"  # short periods so that Down is seen in ~3 s


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
