"""`covey container exec` through a lab host's coveyd, into real busybox containers: output,
exit codes, -e, -w, -u, stdin with -i, a terminal with -t, and clear errors."""
import argparse
import hashlib
import os
import re
import select
import signal
import subprocess
import sys

import pytest

from coveyd.daemon import make_executor
from deploy.lab import REPO, Lab
from tests.support.poll import wait_until
from worker.executor import ContainerConfig

CLI_TIMEOUT = 60.0         # s: one covey command
GONE_TIMEOUT = 15.0        # s: an abandoned exec's process to be killed
ANSWER_TIMEOUT = 20.0      # s: an interactive shell's answer to reach our terminal
SELECT_INTERVAL = 0.1      # s: one wait for the terminal to have something to read


def _daemon_args(host, registry):
    """The same arguments the lab gives coveyd: so the executor here is coveyd's own."""
    return argparse.Namespace(data_dir=host.data_dir, socket=host.socket, run_dir=None,
                              insecure_registry=[registry.address])


def _argv(host, *args: str) -> list[str]:
    return [sys.executable, "-m", "covey.cli.main", "-H", f"unix://{host.socket}", *args]


@pytest.fixture(scope="module")
def node(registry, images, ref, run):
    """A lab host whose coveyd holds a running busybox container `box` and an exited `done`."""
    lab = Lab(1).up()
    host = lab.hosts[0]
    executor = make_executor(_daemon_args(host, registry))
    try:
        run(executor.run(ContainerConfig(name="box", image=ref("covey/busybox:1"), env=["FROM_SPEC=spec"],
                                         command=["sleep", "600"])))
        run(executor.run(ContainerConfig(name="done", image=ref("covey/busybox:1"), command=["true"])))
        run(executor.wait("done", timeout=30))
        lab.start_coveyd(host)
        yield lab, host
    finally:
        lab.down()
        run(executor.destroy_all())


def covey(node, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    _, host = node
    return subprocess.run(_argv(host, *args), input=stdin, capture_output=True, text=True, timeout=CLI_TIMEOUT,
                          cwd=REPO, stdin=subprocess.DEVNULL if stdin is None else None)


def test_exec_prints_the_output_and_passes_the_exit_code(node):
    echoed = covey(node, "container", "exec", "box", "echo", "hello", "world")
    assert (echoed.returncode, echoed.stdout, echoed.stderr) == (0, "hello world\n", "")
    failed = covey(node, "container", "exec", "bo", "sh", "-c", "echo oops >&2; exit 7")   # a unique prefix
    assert (failed.returncode, failed.stdout, failed.stderr) == (7, "", "oops\n")
    killed = covey(node, "container", "exec", "box", "sh", "-c", "kill -9 $$")
    assert killed.returncode == 128 + 9


def test_env_workdir_and_user(node):
    env = covey(node, "container", "exec", "-e", "GREETING=hi", "-e", "FROM_SPEC=exec", "box",
                "sh", "-c", "echo $GREETING $FROM_SPEC")
    assert env.stdout == "hi exec\n"      # -e adds to the container's env, and wins over it
    kept = covey(node, "container", "exec", "box", "sh", "-c", "echo $FROM_SPEC")
    assert kept.stdout == "spec\n"
    assert covey(node, "container", "exec", "-w", "/tmp", "box", "pwd").stdout == "/tmp\n"
    assert covey(node, "container", "exec", "box", "id", "-u").stdout == "0\n"
    assert covey(node, "container", "exec", "-u", "app", "box", "id", "-u").stdout == "1000\n"
    assert covey(node, "container", "exec", "-u", "app:extra", "box", "id", "-g").stdout == "2000\n"
    assert covey(node, "container", "exec", "-u", "4242", "box", "id", "-u").stdout == "4242\n"


def test_stdin_with_i_and_none_without(node):
    piped = covey(node, "container", "exec", "-i", "box", "cat", stdin="line one\nline two\n")
    assert (piped.returncode, piped.stdout) == (0, "line one\nline two\n")
    counted = covey(node, "container", "exec", "-i", "box", "wc", "-l", stdin="a\nb\nc\n")
    assert counted.stdout.strip() == "3"          # the end of our stdin is the end of its
    _, host = node
    with subprocess.Popen(_argv(host, "container", "exec", "-i", "box", "true"), stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, cwd=REPO) as still_open:     # our stdin never ends
        assert still_open.wait(CLI_TIMEOUT) == 0       # the command did: so do we
    ignored = covey(node, "container", "exec", "box", "cat", stdin="not sent\n")
    assert (ignored.returncode, ignored.stdout) == (0, "")


def test_megabytes_both_ways(node):
    """More than the read-ahead and gRPC's message sizes: nothing lost, nothing reordered."""
    _, host = node
    size = 5 * 1024 * 1024
    out = subprocess.run(_argv(host, "container", "exec", "box", "head", "-c", str(size), "/dev/urandom"),
                         capture_output=True, stdin=subprocess.DEVNULL, timeout=CLI_TIMEOUT, cwd=REPO)
    assert (out.returncode, len(out.stdout)) == (0, size)
    digest = subprocess.run(_argv(host, "container", "exec", "-i", "box", "md5sum"), input=out.stdout,
                            capture_output=True, timeout=CLI_TIMEOUT, cwd=REPO)
    assert digest.stdout.split()[0].decode() == hashlib.md5(out.stdout).hexdigest()


def test_a_terminal_with_t(node):
    _, host = node
    shown = subprocess.run(_argv(host, "container", "exec", "-t", "box", "sh", "-c", "tty; echo $TERM; exit 3"),
                           capture_output=True, stdin=subprocess.DEVNULL, timeout=CLI_TIMEOUT, cwd=REPO)
    assert shown.returncode == 3
    assert re.match(rb"/dev/pts/\d+\r+\nxterm\r+\n$", shown.stdout)   # a terminal's line ends


def _read_until(fd: int, marker: bytes, timeout: float) -> bytes:
    seen = bytearray()

    def arrived() -> bool:
        if select.select([fd], [], [], SELECT_INTERVAL)[0]:
            seen.extend(os.read(fd, 4096))
        return marker in seen
    wait_until(arrived, timeout, interval=0, what=f"{marker!r} on the terminal")
    return bytes(seen)


def test_an_interactive_terminal_with_it(node):
    """As a user types into `covey container exec -it box sh` from a terminal."""
    _, host = node
    master, slave = os.openpty()
    cli = subprocess.Popen(_argv(host, "container", "exec", "-it", "box", "sh"), stdin=slave, stdout=slave,
                           stderr=subprocess.PIPE, cwd=REPO)
    os.close(slave)
    try:
        _read_until(master, b"# ", ANSWER_TIMEOUT)      # the shell's prompt: it reads what we type
        os.write(master, b"echo answer-$((6*7)); tty\r")
        answer = _read_until(master, b"/dev/pts/", ANSWER_TIMEOUT)
        assert re.search(rb"\nanswer-42\r+\n", answer)   # the shell may make \r\n of \n more than once
        os.write(master, b"exit 5\r")
        assert cli.wait(CLI_TIMEOUT) == 5, cli.stderr.read() if cli.stderr else ""
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
        os.close(master)


def test_errors_are_clear(node):
    missing = covey(node, "container", "exec", "nope", "true")
    assert missing.returncode == 1 and "no such container: nope" in missing.stderr
    stopped = covey(node, "container", "exec", "done", "true")
    assert stopped.returncode == 1 and "container done is not running (it is exited)" in stopped.stderr
    no_command = covey(node, "container", "exec", "box")
    assert no_command.returncode == 1 and "exec needs a command" in no_command.stderr
    no_user = covey(node, "container", "exec", "-u", "ghost", "box", "true")
    assert no_user.returncode == 1 and "user 'ghost' not found" in no_user.stderr
    no_binary = covey(node, "container", "exec", "box", "/no/such/binary")     # Docker's 127 and 126
    assert no_binary.returncode == 127 and no_binary.stderr.startswith("covey: exec failed: ")
    assert '"/no/such/binary": stat /no/such/binary: no such file or directory' in no_binary.stderr
    assert covey(node, "container", "exec", "box", "no-such-command").returncode == 127
    assert covey(node, "container", "exec", "box", "/etc/passwd").returncode == 126
    no_dir = covey(node, "container", "exec", "-w", "/nowhere", "box", "true")
    assert no_dir.returncode == 126 and '"/nowhere"' in no_dir.stderr


def test_an_abandoned_exec_takes_its_process_along(node):
    def sleepers() -> str:
        return covey(node, "container", "exec", "box", "ps", "-o", "args").stdout

    _, host = node
    cli = subprocess.Popen(_argv(host, "container", "exec", "box", "sh", "-c", "echo started; exec sleep 601"),
                           stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, cwd=REPO)
    try:
        assert cli.stdout and cli.stdout.readline() == "started\n"
        assert "sleep 601" in sleepers()
        cli.send_signal(signal.SIGINT)
        assert cli.wait(CLI_TIMEOUT) == 130
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    wait_until(lambda: "sleep 601" not in sleepers(), GONE_TIMEOUT, what="the exec'd process to be killed")
