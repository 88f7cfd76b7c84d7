"""The ingress routing mesh on a real 4-host swarm (issue 14): every host answers a published
port whether or not it runs a task, host-mode ports only where a task runs, the client's own
address kept on request, ports refused and given back, and a rolling update or a lost node
that costs no request. Clients run in the lab resolver's namespace: on the underlay, never
in the root namespace."""
import json
import threading

import pytest

from tests.e2e.swarmtools import REGISTRY, caller_ip, swarm_with_registry, wait_state
from tests.support.poll import wait_until

WHOAMI = f"{REGISTRY}/covey/whoami:1"
FETCH_TIMEOUT = "5"   # seconds for one request (busybox wget -T segfaults: timeout(1) instead)
ROUNDS = 8            # requests per host address: enough for `numgen inc` to visit both backends


@pytest.fixture(scope="module")
def lab():
    with swarm_with_registry(4) as lab:
        lab.start_resolver({})          # its namespace is the outside client's
        yield lab


def covey(lab, *args, **kwargs):
    return lab.covey(lab.hosts[0], *args, **kwargs)


def get(lab, addr: str, port: int, check: bool = True) -> tuple[str, str] | None:
    """(backend hostname, the client address it saw), asked from outside the swarm."""
    result = lab.run_in(lab.resolver, ["timeout", FETCH_TIMEOUT, "busybox", "wget", "-qO-",
                                       f"http://{addr}:{port}/cgi-bin/id"])
    if result.returncode != 0:
        assert not check, f"{addr}:{port} did not answer: {result.stderr.strip()}"
        return None
    hostname, seen = result.stdout.split()
    return hostname, caller_ip(seen)


def backends(lab, service: str) -> set[str]:
    """The hostnames of a service's running tasks (task ID prefixes: the default hostname)."""
    tasks = json.loads(covey(lab, "service", "ps", "--format", "json", service).stdout)
    return {t["id"][:12] for t in tasks if t.get("desired_state") == "RUNNING"
            and t["status"].get("state") == "RUNNING"}


def converge(lab, service: str, replicas: int) -> set[str]:
    wait_until(lambda: len(backends(lab, service)) == replicas, 60, 0.3, f"{replicas} tasks of {service}")
    return backends(lab, service)


def node_hosting(lab, service: str, besides=None):
    """A host running a task of the service (not `besides`)."""
    tasks = json.loads(covey(lab, "service", "ps", "--format", "json", service).stdout)
    nodes = {n["id"]: n["description"]["hostname"]
             for n in json.loads(covey(lab, "node", "ls", "--format", "json").stdout)}
    hosts = [lab.hosts[int(nodes[t["node_id"]].removeprefix("host")) - 1] for t in tasks
             if t["status"].get("state") == "RUNNING" and t.get("desired_state") == "RUNNING"]
    return next(h for h in hosts if h is not besides)


@pytest.fixture(scope="module")
def web(lab):
    covey(lab, "service", "create", "--name", "web", "-p", "8080:8080", "--replicas", "2", "-d", WHOAMI)
    return converge(lab, "web", 2)


def test_every_host_answers_with_every_backend_and_hides_the_client_by_default(lab, web):
    for host in lab.hosts:
        answers = [get(lab, host.addr, 8080) for _ in range(ROUNDS)]
        assert {a[0] for a in answers if a} == web, f"{host.name} spreads over both backends"
        assert lab.resolver.addr not in {a[1] for a in answers if a}, "by default a node address is seen"


def test_the_client_address_is_kept_on_request_through_every_host(lab, web):
    covey(lab, "service", "create", "--name", "keep", "-p", "8081:8080", "--replicas", "2",
          "--label", "covey.ingress.client-ip=preserve", "-d", WHOAMI)
    converge(lab, "keep", 2)
    for host in lab.hosts:
        seen = {get(lab, host.addr, 8081)[1] for _ in range(4)}
        assert seen == {lab.resolver.addr}, f"through {host.name} the backend saw {seen}"
    covey(lab, "service", "rm", "keep")


def test_host_mode_answers_only_where_its_task_runs(lab, web):
    covey(lab, "service", "create", "--name", "local", "--publish", "published=8082,target=8080,mode=host",
          "-d", WHOAMI)
    converge(lab, "local", 1)
    there = node_hosting(lab, "local")
    assert get(lab, there.addr, 8082)[1] == lab.resolver.addr, "host mode shows the client"
    for host in lab.hosts:
        if host is not there:
            assert get(lab, host.addr, 8082, check=False) is None, f"{host.name} runs no task of it"
    covey(lab, "service", "rm", "local")


def test_a_taken_port_is_refused_naming_its_service_and_auto_ports_answer(lab, web):
    taken = covey(lab, "service", "create", "--name", "thief", "-p", "8080:80", WHOAMI, check=False)
    assert taken.returncode != 0 and "web" in taken.stderr and "8080" in taken.stderr
    assert "thief" not in covey(lab, "service", "ls").stdout, "nothing stored"
    covey(lab, "service", "create", "--name", "auto", "-p", "8080", "-d", WHOAMI)
    converge(lab, "auto", 1)
    service = json.loads(covey(lab, "service", "inspect", "auto").stdout)[0]
    port = service["Endpoint"]["Ports"][0]["PublishedPort"]
    assert 30000 <= port <= 32767
    assert get(lab, lab.hosts[-1].addr, port)
    covey(lab, "service", "update", "--publish-rm", str(port), "auto")
    for host in lab.hosts:
        wait_until(lambda h=host: get(lab, h.addr, port, check=False) is None, 15, 0.2,
                   f"{host.name} to close port {port}")
    covey(lab, "service", "rm", "auto")


def loop_requests(lab, addr: str, port: int, stop: threading.Event, results: list) -> threading.Thread:
    def run():
        while not stop.is_set():
            results.append(get(lab, addr, port, check=False) is not None)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_a_start_first_update_with_a_healthcheck_fails_no_request(lab, web):
    covey(lab, "service", "create", "--name", "roll", "-p", "8083:8080", "--replicas", "2",
          "--health-cmd", "wget -qO- http://127.0.0.1:8080/ >/dev/null", "--health-interval", "1s",
          "--update-order", "start-first", "--update-parallelism", "1", "-d", WHOAMI)
    converge(lab, "roll", 2)
    stop, results = threading.Event(), []
    client = loop_requests(lab, lab.hosts[1].addr, 8083, stop, results)
    try:
        covey(lab, "service", "update", "--env-add", "ROLL=2", "roll", timeout=180)
    finally:
        stop.set()
        client.join(30)
    assert len(results) > 10 and all(results), f"{results.count(False)} of {len(results)} requests failed"
    covey(lab, "service", "rm", "roll")


def test_a_lost_node_gets_no_new_connection_after_the_heartbeat_timeout(lab, web):
    lost = node_hosting(lab, "web", besides=lab.hosts[0])     # never the manager
    asker = next(h for h in lab.hosts if h is not lost)
    lab.cut(lost)
    try:
        wait_state(lab, lab.hosts[0], lost.name, "DOWN")
        answers = [get(lab, asker.addr, 8080, check=False) for _ in range(ROUNDS)]
        assert all(answers), "no connection goes to the lost node's task"
    finally:
        lab.heal(lost)
    wait_state(lab, lab.hosts[0], lost.name, "READY")
