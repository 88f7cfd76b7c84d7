"""Real stack files deploy (issue 15): files of the public compose corpus (copied with their
licences into tests/fixtures/compose), each image replaced by a lab registry stand-in
(tests/support/standins.py), deployed with `covey stack deploy` on one lab swarm: every
service converges with the file's replicas, modes and published ports, services reach each
other by their compose names on the networks they share (and only those), and `stack rm`
leaves nothing."""
import pytest

from tests.e2e.swarmtools import REGISTRY, runc_running, swarm_with_registry
from tests.e2e.test_overlay import exec_in, lookup, running_tasks
from tests.support.poll import wait_until
from tests.support.standins import SERVER_PORT, lab_stack

CONVERGE = 90.0              # s: a deploy's wait for its services (images pulled on 3 hosts)
CLI_TIMEOUT = CONVERGE + 30  # s: one covey command
GONE = 60.0                  # s: for every container to stop after `stack rm`
FETCH_TIMEOUT = "5"          # s: one wget inside a container
HOSTS = 3
STACKS = {"vote": "voting-app.yml", "vote5": "voting-app-global.yml", "cron": "cronjob-date.yml"}
# What `stack services` must show: service -> (MODE, REPLICAS, PORTS), from the files.
EXPECTED = {
    "vote": {"redis": ("replicated", "1/1", ""), "db": ("replicated", "1/1", ""),
             "vote": ("replicated", "2/2", f"*:8080->{SERVER_PORT}/tcp"),
             "result": ("replicated", "1/1", f"*:8081->{SERVER_PORT}/tcp"), "worker": ("replicated", "2/2", "")},
    "vote5": {"redis": ("replicated", "1/1", ""), "db": ("replicated", "1/1", ""),
              "vote": ("global", f"{HOSTS}/{HOSTS}", f"*:5000->{SERVER_PORT}/tcp"),
              "result": ("replicated", "1/1", f"*:5001->{SERVER_PORT}/tcp"),
              "worker": ("global", f"{HOSTS}/{HOSTS}", "")},
    "cron": {"test": ("replicated", "0/0", "")},
}


@pytest.fixture(scope="module")
def lab():
    with swarm_with_registry(HOSTS) as lab:
        yield lab


def covey(lab, *args, check: bool = True):
    return lab.covey(lab.hosts[0], *args, check=check, timeout=CLI_TIMEOUT)


@pytest.fixture(scope="module")
def stacks(lab, tmp_path_factory):
    """Every stack deployed, each deploy waiting for its services to converge."""
    directory = tmp_path_factory.mktemp("stacks")
    for stack, fixture in STACKS.items():
        path = directory / fixture
        path.write_text(lab_stack(fixture, REGISTRY))
        covey(lab, "stack", "deploy", "-c", str(path), "--converge-timeout", f"{int(CONVERGE)}s", stack)
    return STACKS


def services_table(lab, stack: str) -> dict[str, tuple[str, str, str]]:
    """service (without its stack's prefix) -> (MODE, REPLICAS, PORTS) of `stack services`."""
    lines = covey(lab, "stack", "services", stack).stdout.splitlines()
    header, rows = lines[0], lines[1:]
    columns = [header.index(name) for name in ("NAME", "MODE", "REPLICAS", "IMAGE", "PORTS")]
    out = {}
    for row in rows:
        name, mode, replicas, _, ports = (row[a:b].strip() for a, b in zip(columns, [*columns[1:], None], strict=True))
        out[name.removeprefix(f"{stack}_")] = (mode, replicas, ports)
    return out


def test_every_service_converges_with_the_file_s_replicas_and_ports(lab, stacks):
    for stack in stacks:
        assert services_table(lab, stack) == EXPECTED[stack], f"stack {stack}"
    assert set(covey(lab, "stack", "ls").stdout.split()[2::2]) == set(stacks)


def answer_by_name(lab, task: dict, name: str):
    url = f"http://{name}:{SERVER_PORT}/cgi-bin/id"
    return exec_in(lab, task, "timeout", FETCH_TIMEOUT, "wget", "-qO-", url, check=False)


def test_services_reach_each_other_by_compose_name_on_shared_networks_only(lab, stacks):
    vote = running_tasks(lab, "vote_vote")[0]
    redis_names = {t["id"][:12] for t in running_tasks(lab, "vote_redis")}   # the default hostname
    answer = answer_by_name(lab, vote, "redis")
    assert answer.returncode == 0 and answer.stdout.split()[0] in redis_names, "vote -> redis on frontend"
    worker = running_tasks(lab, "vote_worker")[0]
    assert answer_by_name(lab, worker, "db").returncode == 0, "worker -> db on backend"
    assert lookup(lab, vote, "db") == set(), "vote is not on backend: db is not its to see"
    other = running_tasks(lab, "vote5_vote")[0]
    assert lookup(lab, other, "redis") != lookup(lab, vote, "redis"), "each stack's redis is its own"


def test_stack_rm_leaves_nothing(lab, stacks):
    for stack in stacks:
        assert f"Removing service {stack}_" in covey(lab, "stack", "rm", stack).stdout
    for stack in stacks:
        assert stack not in covey(lab, "stack", "ls").stdout.split()
        assert f"{stack}_" not in covey(lab, "service", "ls").stdout
        assert f"{stack}_" not in covey(lab, "network", "ls").stdout
    wait_until(lambda: not any(runc_running(h) for h in lab.hosts), GONE, 0.5, "every container of the stacks gone")
