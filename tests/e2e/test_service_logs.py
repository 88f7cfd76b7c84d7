"""`covey service logs`: real containers on 3 lab hosts, their lines gathered by the leader
from every node, merged by time; a node that is down is named, never waited for."""
import datetime
import signal
import subprocess
import sys
import threading

import pytest

from deploy.lab import REPO
from tests.e2e.swarmtools import REGISTRY, swarm_with_registry, wait_state
from tests.support.poll import wait_until

GATHER_TIMEOUT = "3s"
# Three lines, a little apart, then quiet: every task's output is known in advance.
TALKER = ["sh", "-c", 'for i in 1 2 3; do echo "line $i"; sleep 0.2; done; echo "to stderr" >&2; exec sleep 3600']


@pytest.fixture(scope="module")
def lab():
    with swarm_with_registry(3, ("--set", f"log_gather_timeout={GATHER_TIMEOUT}")) as lab:
        yield lab


def logs(lab, *args, timeout=30.0):
    return lab.covey(lab.hosts[0], "service", "logs", *args, timeout=timeout)


def prefixed(output: str) -> list[tuple[str, str]]:
    """(prefix, message) of each line 'talk.1.abcdef@host2    | line 1'."""
    pairs = []
    for line in output.splitlines():
        prefix, sep, message = line.partition("    | ")
        if sep:
            pairs.append((prefix, message))
    return pairs


def test_logs_from_three_hosts_merged_by_time_then_a_host_down_is_named(lab):
    m = lab.hosts[0]
    lab.covey(m, "service", "create", "--name", "talk", "--replicas", "3", f"{REGISTRY}/covey/busybox:1", *TALKER)
    wait_until(lambda: len(prefixed(logs(lab, "talk").stdout)) == 9, 30, 0.3, "3 lines from each of 3 tasks")

    result = logs(lab, "-t", "talk")
    lines = prefixed(result.stdout)
    assert {p.rsplit("@", 1)[1] for p, _ in lines} == {"host1", "host2", "host3"}
    assert sorted(msg.split(" ", 1)[1] for _, msg in lines) == ["line 1"] * 3 + ["line 2"] * 3 + ["line 3"] * 3
    stamps = [datetime.datetime.fromisoformat(msg.split(" ", 1)[0].replace("Z", "+00:00")) for _, msg in lines]
    assert stamps == sorted(stamps), "merged by time"
    assert {p.split(".")[1] for p, _ in lines} == {"1", "2", "3"}, "each line names its slot"
    assert result.stderr.count("to stderr") == 3, "stderr lines go to stderr"
    assert not [line for line in result.stderr.splitlines() if line.startswith("warning")]

    tail = logs(lab, "--tail", "2", "talk")  # per task, both streams: line 3, then the stderr line
    assert [msg for _, msg in prefixed(tail.stdout)] == ["line 3"] * 3, "--tail is per task"
    assert tail.stderr.count("to stderr") == 3
    assert prefixed(logs(lab, "--since", "2100-01-01T00:00:00Z", "talk").stdout) == []

    lab.stop_coveyd(lab.hosts[2], signal.SIGKILL)
    result = logs(lab, "talk", timeout=30)  # the gather timeout is 3 s: it must not hang
    hosts = {p.rsplit("@", 1)[1] for p, _ in prefixed(result.stdout)}
    assert {"host1", "host2"} <= hosts and "host3" not in hosts
    assert "warning: node host3" in result.stderr, result.stderr
    assert result.returncode == 0
    lab.start_coveyd(lab.hosts[2])
    wait_state(lab, m, "host3", "READY")
    lab.covey(m, "service", "rm", "talk")


def test_follow_gets_new_lines_and_new_tasks(lab):
    m = lab.hosts[0]
    lab.covey(m, "service", "create", "--name", "chat", "--replicas", "2", f"{REGISTRY}/covey/busybox:1", *TALKER)
    wait_until(lambda: len(prefixed(logs(lab, "chat").stdout)) == 6, 30, 0.3, "3 lines from each of 2 tasks")
    argv = [sys.executable, "-m", "covey.cli.main", "-H", f"unix://{m.socket}", "service", "logs", "-f", "chat"]
    follower = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.extend(iter(follower.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        wait_until(lambda: len(seen) == 6, 30, 0.1, "the backlog")
        lab.covey(m, "service", "scale", "chat=3")
        wait_until(lambda: len(seen) == 9, 60, 0.1, "the new task's lines, as they come")
        assert {p.split(".")[1] for p, _ in prefixed("".join(seen[6:]))} == {"3"}
        assert follower.poll() is None, "following goes on"
    finally:
        follower.terminate()
        follower.wait(10)
    lab.covey(m, "service", "rm", "chat")


def test_logs_errors(lab):
    result = lab.covey(lab.hosts[0], "service", "logs", "nosuch", check=False)
    assert result.returncode != 0 and "service nosuch not found" in result.stderr
    result = lab.covey(lab.hosts[0], "service", "logs", "--tail", "ten", "nosuch", check=False)
    assert result.returncode != 0 and "invalid --tail 'ten'" in result.stderr
