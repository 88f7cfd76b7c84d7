"""Overlay networks across lab hosts with real containers (issue 13): names and VIPs from the
embedded DNS, connections spread by the VIP over every replica, isolation between networks,
egress through the node, and DNS that follows scaling on every node.

Requests run inside containers with `covey container exec`, as users look inside theirs."""
import json

import pytest

from tests.e2e.swarmtools import REGISTRY, caller_ip, swarm_with_registry
from tests.support.poll import wait_until

WHOAMI = f"{REGISTRY}/covey/whoami:1"
BUSYBOX = f"{REGISTRY}/covey/busybox:1"
EGRESS_NAME = "egress.lab"
EGRESS_PORT = 8000
FETCH_TIMEOUT = "5"        # seconds for one wget inside a container (busybox wget -T segfaults)


@pytest.fixture(scope="module")
def lab():
    with swarm_with_registry(3) as lab:
        lab.start_resolver({EGRESS_NAME: lab.resolver.addr})
        yield lab


def manager(lab):
    return lab.hosts[0]


def covey(lab, *args, **kwargs):
    return lab.covey(manager(lab), *args, **kwargs)


def running_tasks(lab, service) -> list[dict]:
    tasks = json.loads(covey(lab, "service", "ps", "--format", "json", service).stdout)
    return [t for t in tasks if t.get("desired_state") == "RUNNING" and t["status"].get("state") == "RUNNING"]


def host_of(lab, node_id: str):
    nodes = json.loads(covey(lab, "node", "ls", "--format", "json").stdout)
    hostname = next(n["description"]["hostname"] for n in nodes if n["id"] == node_id)
    return lab.hosts[int(hostname.removeprefix("host")) - 1]


def task_ips(task: dict) -> list[str]:
    return [a["addr"].split("/")[0] for a in task.get("networks", [])]


def exec_in(lab, task: dict, *argv: str, check: bool = True):
    """Run a command in the container of a task, on its own host."""
    return lab.covey(host_of(lab, task["node_id"]), "container", "exec", task["id"], *argv, check=check)


def fetch(lab, task: dict, url: str, check: bool = True):
    return exec_in(lab, task, "timeout", FETCH_TIMEOUT, "wget", "-qO-", url, check=check)


def lookup(lab, task: dict, name: str) -> set[str]:
    """The addresses the container's resolver (127.0.0.11) gives for `name`."""
    out = exec_in(lab, task, "nslookup", name, check=False).stdout
    answer = out.split(f"Name:\t{name}", 1)[-1] if "Name:" in out else ""
    return {line.split()[-1] for line in answer.splitlines() if line.startswith("Address")}


def converge(lab, service: str, replicas: int, timeout: float = 60.0) -> list[dict]:
    wait_until(lambda: len(running_tasks(lab, service)) == replicas, timeout, 0.3,
               f"{replicas} running tasks of {service}")
    return running_tasks(lab, service)


@pytest.fixture(scope="module")
def appnet(lab):
    """A network with a web service (2 replicas) and a global client (one per host)."""
    covey(lab, "network", "create", "-d", "overlay", "appnet")
    covey(lab, "service", "create", "--name", "web", "--network", "appnet", "--replicas", "2", "-d", WHOAMI)
    covey(lab, "service", "create", "--name", "client", "--network", "name=appnet,alias=probe", "--mode",
          "global", "-d", BUSYBOX, "sleep", "86400")
    converge(lab, "web", 2)
    converge(lab, "client", len(lab.hosts))
    return "appnet"


def test_a_client_reaches_a_service_by_name_across_hosts_and_connections_spread(lab, appnet):
    web = running_tasks(lab, "web")
    web_hosts = {host_of(lab, t["node_id"]).name for t in web}
    assert len(web_hosts) == 2, "the two replicas are spread over two hosts"
    client = next(t for t in running_tasks(lab, "client") if host_of(lab, t["node_id"]).name not in web_hosts)
    seen, callers = set(), set()
    for _ in range(12):
        hostname, caller = fetch(lab, client, "http://web:8080/cgi-bin/id").stdout.split()
        seen.add(hostname)
        callers.add(caller_ip(caller))
    assert len(seen) == 2, f"new connections spread over both replicas: {seen}"
    assert callers == set(task_ips(client)), "the backend sees the calling container's own address"
    vip = lookup(lab, client, "web")
    assert len(vip) == 1 and vip.isdisjoint({ip for t in web for ip in task_ips(t)}), "web resolves to its VIP"


def test_tasks_names_list_every_replica_and_aliases_resolve(lab, appnet):
    client = running_tasks(lab, "client")[0]
    web_ips = {ip for t in running_tasks(lab, "web") for ip in task_ips(t)}
    assert lookup(lab, client, "tasks.web") == web_ips
    assert lookup(lab, client, "probe") == lookup(lab, client, "client"), "an alias answers as the service"
    assert lookup(lab, client, "no-such-service") == set()


def test_dnsrr_answers_every_task_address(lab, appnet):
    covey(lab, "service", "create", "--name", "rr", "--network", "appnet", "--endpoint-mode", "dnsrr",
          "--replicas", "2", "-d", WHOAMI)
    rr = converge(lab, "rr", 2)
    client = running_tasks(lab, "client")[0]
    assert lookup(lab, client, "rr") == {ip for t in rr for ip in task_ips(t)}
    assert fetch(lab, client, "http://rr:8080/cgi-bin/id").stdout.split()[0]
    covey(lab, "service", "rm", "rr")


def test_dns_follows_scaling_on_every_node(lab, appnet):
    clients = running_tasks(lab, "client")
    for replicas in (3, 1, 3):
        covey(lab, "service", "scale", f"web={replicas}")
        web = converge(lab, "web", replicas)
        want = {ip for t in web for ip in task_ips(t)}
        for client in clients:      # one per host: every node answers the same
            wait_until(lambda c=client: lookup(lab, c, "tasks.web") == want, 10, 0.2,
                       f"tasks.web on {host_of(lab, client['node_id']).name} to list {want}")
    covey(lab, "service", "scale", "web=2")
    converge(lab, "web", 2)


def test_two_networks_are_isolated(lab, appnet):
    covey(lab, "network", "create", "-d", "overlay", "othernet")
    covey(lab, "service", "create", "--name", "outsider", "--network", "othernet", "-d", BUSYBOX, "sleep", "86400")
    outsider = converge(lab, "outsider", 1)[0]
    web_ip = task_ips(running_tasks(lab, "web")[0])[0]
    assert fetch(lab, outsider, f"http://{web_ip}:8080/", check=False).returncode != 0
    assert lookup(lab, outsider, "web") == set(), "names of other networks are not answered"
    covey(lab, "service", "rm", "outsider")


def test_egress_goes_through_the_node_and_internal_networks_have_none(lab, appnet):
    httpd = lab.resolver.dir / "www"            # the resolver's namespace doubles as "the internet"
    httpd.mkdir(exist_ok=True)
    (httpd / "index.html").write_text("outside\n")
    lab.start_helper("egress-httpd", lab.resolver,
                     ["busybox", "httpd", "-f", "-p", f"{lab.resolver.addr}:{EGRESS_PORT}", "-h", str(httpd)])
    client = running_tasks(lab, "client")[0]
    url = f"http://{EGRESS_NAME}:{EGRESS_PORT}/"
    assert fetch(lab, client, url).stdout == "outside\n", "a name from the upstream resolver, reached via the node"
    covey(lab, "network", "create", "-d", "overlay", "--internal", "closed")
    covey(lab, "service", "create", "--name", "inside", "--network", "closed", "-d", BUSYBOX, "sleep", "86400")
    inside = converge(lab, "inside", 1)[0]
    assert fetch(lab, inside, f"http://{lab.resolver.addr}:{EGRESS_PORT}/", check=False).returncode != 0
    covey(lab, "service", "rm", "inside")


def test_network_rm_is_refused_while_a_service_uses_it(lab, appnet):
    refused = covey(lab, "network", "rm", "appnet", check=False)
    assert refused.returncode != 0 and "web" in refused.stderr
    assert "appnet" in covey(lab, "network", "ls").stdout


def inspect_on(lab, host, network: str) -> dict:
    (shown,) = json.loads(lab.covey(host, "network", "inspect", network).stdout)
    return shown


def test_network_inspect_on_a_node_shows_its_containers_and_peers(lab, appnet):
    tasks = running_tasks(lab, "web") + running_tasks(lab, "client")
    host = manager(lab)         # the managers' view and the node's part together (a worker's: below)
    local = [t for t in tasks if host_of(lab, t["node_id"]) is host]
    remote = [t for t in tasks if host_of(lab, t["node_id"]) is not host]
    shown = inspect_on(lab, host, appnet)
    assert shown["Name"] == "appnet" and shown["VNI"] and shown["Sandbox"]
    attached = {c["EndpointID"]: c for c in shown["Containers"].values()}
    assert set(attached) == {t["id"] for t in local}, "this node's own containers on appnet"
    for task in local:
        assert attached[task["id"]]["IPv4Address"].split("/")[0] == task_ips(task)[0]
        assert attached[task["id"]]["Interface"] == "eth0" and attached[task["id"]]["MacAddress"].startswith("02:42:")
    peers = {p["EndpointIP"]: p for p in shown["Peers"]}
    assert set(peers) == {ip for t in remote for ip in task_ips(t)}, "every remote endpoint, none of the local ones"
    assert {p["IP"] for p in peers.values()} == {host_of(lab, t["node_id"]).addr for t in remote}
    assert shown["Debug"]["ProgrammedPeers"] == {ip: p["IP"] for ip, p in peers.items()}, "the driver agrees"


def test_network_inspect_of_ingress_on_a_node_shows_its_address_and_ports(lab, appnet):
    covey(lab, "service", "create", "--name", "pub", "--publish", "18080:8080", "-d", WHOAMI)
    converge(lab, "pub", 1)
    worker = lab.hosts[-1]      # no managers' view there: the node's part alone
    shown = wait_until(lambda: _with_port(inspect_on(lab, worker, "ingress"), 18080), 20, 0.3,
                       "port 18080 in the ingress network's inspect on a worker")
    assert shown["Ingress"] and shown["Containers"]["ingress-sbox"]["Name"] == "ingress-endpoint"
    assert shown["Containers"]["ingress-sbox"]["IPv4Address"]
    covey(lab, "service", "rm", "pub")


def _with_port(shown: dict, published: int) -> dict | None:
    ports = [p for p in shown.get("PublishedPorts", []) if p["PublishedPort"] == published and p["Backends"]]
    return shown if ports else None


def test_dns_and_vips_follow_a_killed_task_on_every_node(lab, appnet):
    web = running_tasks(lab, "web")
    victim = web[0]
    host = host_of(lab, victim["node_id"])
    runc = ["runc", "--root", str(host.socket.parent / "runc")]      # coveyd's --run-dir default
    assert lab.run_in(host, [*runc, "kill", f"covey-{victim['id']}", "KILL"]).returncode == 0

    def replaced():
        now = running_tasks(lab, "web")
        return len(now) == 2 and victim["id"] not in {t["id"] for t in now} and now
    now = wait_until(replaced, 60, 0.3, "the killed task replaced")
    want = {ip for t in now for ip in task_ips(t)}
    for client in running_tasks(lab, "client"):
        wait_until(lambda c=client: lookup(lab, c, "tasks.web") == want, 10, 0.2,
                   f"tasks.web on {host_of(lab, client['node_id']).name} to follow the replacement")
        answered = {fetch(lab, client, "http://web:8080/cgi-bin/id").stdout.split()[0] for _ in range(4)}
        assert answered == {t["id"][:12] for t in now}, "the VIP sends new connections to live tasks only"


def test_a_coveyd_restart_on_every_host_keeps_a_long_lived_connection_open(lab, appnet):
    # busybox nc keeps a connection only with -e: the socket is then the program's stdin and
    # stdout; the sink logs what it reads on stderr.
    covey(lab, "service", "create", "--name", "sink", "--network", "appnet", "-d", BUSYBOX, "nc", "-l", "-p", "9000",
          "-e", "sh", "-c", 'while read n; do echo "got $n" >&2; done')
    converge(lab, "sink", 1)
    covey(lab, "service", "create", "--name", "source", "--network", "appnet", "-d", BUSYBOX, "nc", "sink", "9000",
          "-e", "sh", "-c", "i=0; while true; do echo $i; i=$((i+1)); sleep 0.2; done")
    tasks = {t["id"] for t in converge(lab, "source", 1) + running_tasks(lab, "sink")}

    def received() -> int:     # `nc -l` takes one connection: a growing log is that one connection
        return len(covey(lab, "service", "logs", "sink", check=False).stderr.splitlines())  # its stderr
    wait_until(lambda: received() > 5, 20, 0.3, "the source's numbers reaching the sink")
    for host in lab.hosts:
        lab.stop_coveyd(host)
        lab.start_coveyd(host)
    wait_until(lambda: covey(lab, "node", "ls", check=False).stdout.count("Ready") == len(lab.hosts), 60, 0.3,
               "every node Ready again")
    before = received()
    wait_until(lambda: received() > before + 10, 20, 0.3, "numbers still flowing on the same connection")
    after = {t["id"] for t in running_tasks(lab, "source") + running_tasks(lab, "sink")}
    assert after == tasks, covey(lab, "service", "ps", "source", "sink").stdout
    covey(lab, "service", "rm", "source", "sink")
