"""`covey swarm backup` on a 3-host lab swarm (host1 the manager): written on the manager,
verified with no swarm, refused with the problem named for a wrong passphrase or a truncated
copy, and refused on a worker with nothing written."""
import json
import sys
from pathlib import Path

import pytest

from deploy.lab import Lab
from tests.e2e.swarmtools import HEARTBEAT

REPO = Path(__file__).resolve().parents[2]
PASSPHRASE = "e2e backup passphrase"


@pytest.fixture(scope="module")
def lab():
    lab = Lab(3).up()
    try:
        lab.form_swarm(HEARTBEAT)
        yield lab
    finally:
        lab.down()


@pytest.fixture(scope="module")
def files(lab):
    work = lab.dir / "backups"
    work.mkdir()
    (work / "pass").write_text(PASSPHRASE + "\n")
    (work / "wrong").write_text("not it\n")
    return work


def verify(lab, host, path: Path, passfile: Path):
    return lab.covey(host, "swarm", "backup", "--verify", str(path), "--passphrase-file", str(passfile),
                     check=False)


def test_backup_on_the_manager_and_verify(lab, files):
    manager = lab.hosts[0]
    out = files / "swarm.cvyb"
    made = lab.covey(manager, "swarm", "backup", "-o", str(out), "--passphrase-file", str(files / "pass"))
    nodes = json.loads(lab.covey(manager, "node", "ls", "--format", "json").stdout)
    cluster_id = next(line.split()[-1] for line in made.stdout.splitlines() if line.startswith("Cluster ID"))
    assert f"Backup written to {out}" in made.stdout
    assert "Objects:     1 cluster, 3 nodes, 0 services, 0 tasks, 1 networks" in made.stdout, made.stdout
    assert len(cluster_id) == 25 and len(nodes) == 3
    assert out.stat().st_mode & 0o777 == 0o600
    assert PASSPHRASE.encode() not in out.read_bytes() and b"BEGIN" not in out.read_bytes()
    checked = verify(lab, lab.hosts[2], out, files / "pass")  # any host: it needs no swarm
    assert checked.returncode == 0, checked.stderr
    assert "is a readable backup" in checked.stdout
    index = next(line for line in made.stdout.splitlines() if line.startswith("Raft index"))
    assert index in checked.stdout and f"Cluster ID:  {cluster_id}" in checked.stdout
    assert "1 cluster, 3 nodes, 0 services, 0 tasks, 1 networks" in checked.stdout


def test_backup_over_tcp_with_a_manager_certificate(lab, files):
    manager = lab.hosts[0]
    out = files / "over-tcp.cvyb"
    result = lab.run_in(lab.hosts[1], [sys.executable, "-m", "covey.cli.main", "-H", f"tcp://{manager.addr}:4242",
                                       "--cert-dir", str(manager.data_dir / "certificates"), "swarm", "backup",
                                       "-o", str(out), "--passphrase-file", str(files / "pass")], cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert verify(lab, manager, out, files / "pass").returncode == 0


def test_wrong_passphrase_and_truncated_copy_are_refused(lab, files):
    whole = (files / "swarm.cvyb").read_bytes()
    (files / "truncated.cvyb").write_bytes(whole[:len(whole) // 2])
    wrong = verify(lab, lab.hosts[0], files / "swarm.cvyb", files / "wrong")
    assert wrong.returncode == 1 and "wrong passphrase" in wrong.stderr, wrong.stderr
    short = verify(lab, lab.hosts[0], files / "truncated.cvyb", files / "pass")
    assert short.returncode == 1 and "is truncated" in short.stderr, short.stderr


def test_a_worker_is_refused_and_writes_nothing(lab, files):
    worker, manager = lab.hosts[1], lab.hosts[0]
    local_out, remote_out = files / "worker-local.cvyb", files / "worker-tcp.cvyb"
    local = lab.covey(worker, "swarm", "backup", "-o", str(local_out), "--passphrase-file", str(files / "pass"),
                      check=False)
    assert local.returncode == 1 and "this node is not a swarm manager" in local.stderr, local.stderr
    remote = lab.run_in(worker, [sys.executable, "-m", "covey.cli.main", "-H", f"tcp://{manager.addr}:4242",
                                 "--cert-dir", str(worker.data_dir / "certificates"), "swarm", "backup",
                                 "-o", str(remote_out), "--passphrase-file", str(files / "pass")], cwd=REPO)
    assert remote.returncode == 1 and "this node is not a swarm manager" in remote.stderr, remote.stderr
    assert not any(p.name.startswith(("worker-", ".worker-")) for p in files.iterdir())
