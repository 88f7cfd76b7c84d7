"""Secrets and configs across lab hosts with real containers (issue 15): a service reads its
secret at /run/secrets/NAME and its config at its target, with their owners and modes, through
`covey container exec`; the secret's bytes are on no disk of any host (Raft journal, snapshots,
container files, logs, a backup) while the container reads them; a used secret cannot be
removed; and when the last task that used it goes, so does its tmpfs."""
import json
import os
import secrets
from pathlib import Path

import pytest

from tests.e2e.swarmtools import REGISTRY, swarm_with_registry
from tests.support.poll import wait_until

BUSYBOX = f"{REGISTRY}/covey/busybox:1"
SECRET = f"covey-e2e-secret-{secrets.token_hex(8)}".encode()    # bytes found nowhere else
CONFIG = b"listen 8080;\n"
CONVERGE_TIMEOUT = 60.0     # s: the service's task running on host2
GONE_TIMEOUT = 30.0         # s: the container and its tmpfs removed after `service rm`


@pytest.fixture(scope="module")
def lab():
    with swarm_with_registry(2) as lab:
        yield lab


def covey(lab, *args, **kwargs):
    return lab.covey(lab.hosts[0], *args, **kwargs)


@pytest.fixture(scope="module")
def vault(lab, tmp_path_factory):
    """Secrets db_pass (short form) and api_key (owner and mode given), a config at
    /etc/app.conf, and a service "vault" on host2 that uses them all. The data files are
    outside the lab's directories and removed at once."""
    source = tmp_path_factory.mktemp("secret-source")
    for name, data in (("db_pass", SECRET), ("api_key", SECRET + b"-2"), ("app_conf", CONFIG)):
        (source / name).write_bytes(data)
        covey(lab, "config" if name == "app_conf" else "secret", "create", "--label", "e2e=1", name,
              str(source / name))
        (source / name).unlink()
    covey(lab, "service", "create", "--name", "vault", "--constraint", "node.hostname==host2",
          "--secret", "db_pass", "--secret", "source=api_key,target=key,uid=1000,gid=1000,mode=0400",
          "--config", "source=app_conf,target=/etc/app.conf,mode=0440", BUSYBOX, "sleep", "3600",
          timeout=CONVERGE_TIMEOUT + 30)
    wait_until(lambda: running_task(lab) is not None, CONVERGE_TIMEOUT, 0.3, "vault running")
    return running_task(lab)


def running_task(lab) -> dict | None:
    tasks = json.loads(covey(lab, "service", "ps", "--format", "json", "vault").stdout)
    return next((t for t in tasks if t["status"].get("state") == "RUNNING"), None)


def exec_in(lab, task: dict, *argv: str) -> str:
    return lab.covey(lab.hosts[1], "container", "exec", task["id"], *argv).stdout


def files_mounts(lab) -> list[str]:
    """The secrets tmpfs mounts of every host's executor, as the host (root) namespace sees them."""
    prefixes = tuple(f"{h.socket.parent / 'executor' / 'files'}/" for h in lab.hosts)
    return [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
            if line.split()[1].startswith(prefixes) and line.split()[2] == "tmpfs"]


def files_holding(root: Path, needle: bytes, cross_mounts: bool = False) -> list[Path]:
    """Every file under `root` whose bytes contain `needle`; on root's own filesystem only (the
    disk), unless cross_mounts."""
    device = root.stat().st_dev
    found = []
    for directory, dirs, files in os.walk(root):
        if not cross_mounts:
            dirs[:] = [d for d in dirs if os.lstat(os.path.join(directory, d)).st_dev == device]
        for name in files:
            path = Path(directory, name)
            try:
                if path.is_symlink() or not path.is_file():
                    continue
                if needle in path.read_bytes():
                    found.append(path)
            except OSError:
                continue                # a file that went meanwhile
    return found


def test_the_container_reads_its_secrets_and_config_with_owner_and_mode(lab, vault):
    assert exec_in(lab, vault, "cat", "/run/secrets/db_pass").encode() == SECRET
    assert exec_in(lab, vault, "stat", "-c", "%a %u %g", "/run/secrets/db_pass").split() == ["444", "0", "0"]
    assert exec_in(lab, vault, "cat", "/run/secrets/key").encode() == SECRET + b"-2"
    assert exec_in(lab, vault, "stat", "-c", "%a %u %g", "/run/secrets/key").split() == ["400", "1000", "1000"]
    assert exec_in(lab, vault, "cat", "/etc/app.conf").encode() == CONFIG
    assert exec_in(lab, vault, "stat", "-c", "%a %u %g", "/etc/app.conf").split() == ["440", "0", "0"]
    mounts = exec_in(lab, vault, "cat", "/proc/mounts")
    assert any(line.split()[1] == "/run/secrets/db_pass" and "ro" in line.split()[3].split(",")
               for line in mounts.splitlines()), "bound read-only"


def test_inspect_and_ls_never_show_the_secret(lab, vault):
    [shown] = json.loads(covey(lab, "secret", "inspect", "db_pass").stdout)
    assert shown["Spec"] == {"Name": "db_pass", "Labels": {"e2e": "1"}}
    listed = covey(lab, "secret", "ls").stdout
    assert listed.splitlines()[0].split() == ["ID", "NAME", "CREATED", "UPDATED"]
    assert "api_key" in listed and "db_pass" in listed and SECRET.decode() not in listed
    [config] = json.loads(covey(lab, "config", "inspect", "app_conf").stdout)
    assert config["Spec"]["Data"] == "bGlzdGVuIDgwODA7Cg=="      # configs show theirs, in base64


def test_no_plaintext_on_any_disk_while_the_container_reads_it(lab, vault, tmp_path_factory):
    backup = lab.dir / "backup.cvyb"
    passphrase = tmp_path_factory.mktemp("pass") / "phrase"
    passphrase.write_text("correct horse battery staple\n")
    covey(lab, "swarm", "backup", "-o", str(backup), "--passphrase-file", str(passphrase))
    assert backup.stat().st_size > 0
    assert exec_in(lab, vault, "cat", "/run/secrets/db_pass").encode() == SECRET
    # The search does find the bytes where they are: in the container's tmpfs (memory).
    [mount] = files_mounts(lab)
    assert files_holding(Path(mount), SECRET, cross_mounts=True)
    # The lab's directory holds every host's data dir (Raft journal and snapshots, container
    # roots), run dir and logs, the registry, and the backup.
    assert all(h.dir.is_relative_to(lab.dir) for h in lab.hosts) and (lab.hosts[0].data_dir / "raft").is_dir()
    assert files_holding(lab.dir, SECRET) == []


def test_a_used_secret_cannot_be_removed_and_leaves_with_the_last_task(lab, vault):
    refused = covey(lab, "secret", "rm", "db_pass", check=False)
    assert refused.returncode == 1
    assert "secret db_pass is in use by the following service(s): vault" in refused.stderr
    assert len(files_mounts(lab)) == 1

    covey(lab, "service", "rm", "vault")
    wait_until(lambda: not files_mounts(lab), GONE_TIMEOUT, 0.3, "the secrets tmpfs unmounted on host2")
    assert not list((lab.hosts[1].socket.parent / "executor" / "files").iterdir())
    assert covey(lab, "secret", "rm", "db_pass", "api_key").stdout.split() == ["db_pass", "api_key"]
    assert covey(lab, "config", "rm", "app_conf").stdout.strip() == "app_conf"
    assert covey(lab, "secret", "ls", "-q").stdout.strip() == ""
