"""`covey container ls / inspect / logs` through a lab host's coveyd, which adopts the
containers it finds in its data dir when it starts (as after a restart)."""
import argparse
import json
import signal

from coveyd.daemon import make_executor
from deploy.lab import Lab
from tests.support.poll import wait_until
from worker.executor import ContainerConfig


def _daemon_args(host, registry):
    """The same arguments the lab gives coveyd: so the executor here is coveyd's own."""
    return argparse.Namespace(data_dir=host.data_dir, socket=host.socket, run_dir=None,
                              insecure_registry=[registry.address])


def test_coveyd_shows_and_adopts_its_containers(registry, images, ref, run):
    lab = Lab(1).up()
    host = lab.hosts[0]
    executor = make_executor(_daemon_args(host, registry))
    try:
        run(executor.run(ContainerConfig(name="talker", image=ref("covey/busybox:1"),
                                         command=["sh", "-c", "echo out-line; echo err-line >&2; sleep 600"])))
        run(executor.run(ContainerConfig(name="quitter", image=ref("covey/exit:1"), env=["EXIT_CODE=7"])))
        run(executor.wait("quitter", timeout=30))
        lab.start_coveyd(host)

        running = lab.covey(host, "container", "ls").stdout.splitlines()
        assert running[0].split()[:3] == ["CONTAINER", "ID", "IMAGE"]
        assert len(running) == 2 and "talker" in running[1] and "Up" in running[1]
        everything = json.loads(lab.covey(host, "container", "ls", "-a", "--format", "json").stdout)
        by_name = {c["name"]: c for c in everything}
        assert by_name["quitter"]["exit_code"] == 7 and by_name["quitter"]["status"] == "exited"
        listed = lab.covey(host, "container", "ls", "-a").stdout
        assert "Exited (7)" in listed
        # COMMAND: what runs, the image's when the config sets none, quoted and shortened
        assert '"/bin/sh -c \'echo ex…"' in listed and '"sh -c \'echo out-lin…"' in listed

        inspected = json.loads(lab.covey(host, "container", "inspect", "talk").stdout)  # a unique prefix
        assert inspected["name"] == "talker" and inspected["pid"] > 0
        logs = lab.covey(host, "container", "logs", "talker")
        assert logs.stdout == "out-line\n" and logs.stderr == "err-line\n"
        stamped = lab.covey(host, "container", "logs", "-t", "--tail", "1", "quitter").stdout
        assert stamped.endswith("exiting with 7\n") and stamped[:4].isdigit()

        # coveyd going away leaves the container running; the next one takes it back.
        lab.stop_coveyd(host, signal.SIGKILL)
        lab.start_coveyd(host)
        assert "talker" in lab.covey(host, "container", "ls").stdout
        missing = lab.covey(host, "container", "logs", "nope", check=False)
        assert missing.returncode != 0 and "no such container: nope" in missing.stderr
    finally:
        lab.down()
        run(executor.destroy_all())
    wait_until(lambda: not executor.names(), 10, 0.1, "the containers to be removed")
