"""`covey service` flags into a spec, and how services and their progress are shown."""
import argparse
import json

import pytest

from covey.cli import service
from covey.cli.progress import task_lines
from covey.cli.serviceflags import build_spec, edit_spec
from covey.cli.serviceview import pretty_service, ps_order
from covey.errors import InvalidArgument
from proto import control_pb2
from proto import objects_pb2 as pb
from proto import specs_pb2 as specs
from tests.support.builders import task


def parse(*argv):
    parser = argparse.ArgumentParser()
    service.add_parser(parser.add_subparsers())
    return parser.parse_args(argv)


def create(*flags):
    return build_spec(parse("service", "create", "--name", "web", *flags, "img:v1"))


def update(current, *flags):
    return edit_spec(parse("service", "update", *flags, "web"), current)


def test_mounts_healthcheck_and_docker_defaults():
    s = create("--mount", "type=bind,src=/data,dst=/srv,ro", "--mount", "type=tmpfs,target=/tmp,tmpfs-size=64m",
               "--mount", "source=cache,target=/cache", "--health-cmd", "test -f /ok", "--health-retries", "2")
    bind, tmpfs, volume = s.task.container.mounts
    assert (bind.type, bind.source, bind.target, bind.read_only) == (specs.Mount.BIND, "/data", "/srv", True)
    assert (tmpfs.type, tmpfs.tmpfs_options.size_bytes) == (specs.Mount.TMPFS, 64 << 20)
    assert (volume.type, volume.source) == (specs.Mount.VOLUME, "cache")
    assert list(s.task.container.healthcheck.test) == ["CMD-SHELL", "test -f /ok"]
    assert s.task.container.healthcheck.retries == 2
    assert s.update.parallelism == 1 and s.rollback.parallelism == 1  # Docker: one at a time
    assert create("--update-parallelism", "0").update.parallelism == 0


@pytest.mark.parametrize("mount, says", [
    ("type=nfs,target=/x", "type must be bind, volume or tmpfs"),
    ("type=bind,source=rel,target=/x", "bind source must be an absolute path"),
    ("type=volume,source=v,target=x", "target must be an absolute path"),
    ("type=tmpfs,target=/x,colour=red", "unknown field 'colour'"),
    ("type=tmpfs,target=/x,tmpfs-size=12QB", "12QB"),
])
def test_bad_mounts_are_named(mount, says):
    with pytest.raises(InvalidArgument, match=says):
        create("--mount", mount)


def test_pretty_names_the_rollout_and_why_tasks_wait():
    svc = pb.Service(id="s1", spec=create("--replicas", "2", "--update-order", "start-first",
                                          "--reserve-memory", "1g"))
    waiting = pb.Task(id="t" * 25, status=pb.TaskStatus(state=pb.PENDING))
    waiting.explanation.text = "no suitable node (memory on 3 nodes)"
    waiting.explanation.filters.add(name="memory", nodes_excluded=3, reason="needs 1GiB, largest free is 512MiB")
    text = pretty_service(svc, [waiting])
    for expected in ("Replicas:      2", "Update order:  start-first", "Reservations:", "Memory:       1GiB",
                     "memory: 3 node(s) excluded: needs 1GiB, largest free is 512MiB"):
        assert expected in text


def test_progress_shows_one_bar_per_slot_with_its_state_and_error():
    svc = pb.Service(id="s1", spec=create("--replicas", "3"))
    tasks = [pb.Task(slot=1, status=pb.TaskStatus(state=pb.RUNNING)),
             pb.Task(slot=2, status=pb.TaskStatus(state=pb.PREPARING)),
             pb.Task(slot=3, status=pb.TaskStatus(state=pb.REJECTED, err="no such image"))]
    lines = task_lines(svc, tasks)
    assert lines[0] == "overall progress: 1 out of 3 tasks"
    assert lines[1].startswith("1/3: running   [" + "=" * 49 + ">]")
    assert lines[2].startswith("2/3: preparing [") and lines[2].count("=") < 49
    assert lines[3].startswith("3/3: rejected  [") and lines[3].endswith("no such image")


def test_update_changes_only_what_its_flags_name():
    current = create("--replicas", "3", "--constraint", "node.role==worker", "-e", "A=1", "-e", "B=2",
                     "--mount", "type=tmpfs,target=/tmp", "--restart-condition", "on-failure",
                     "--restart-max-attempts", "3", "--label", "team=web")
    new = update(current, "--image", "img:v2", "--env-rm", "A", "--env-add", "C=3", "--replicas", "5",
                 "--constraint-rm", "node.role==worker", "--constraint-add", "node.labels.ssd==true",
                 "--mount-rm", "/tmp", "--mount-add", "type=volume,source=data,target=/data",
                 "--restart-delay", "2s", "--args", "sh -c 'echo hi'", "--label-rm", "team",
                 "--update-order", "start-first")
    c = new.task.container
    assert (c.image, list(c.env), list(c.args)) == ("img:v2", ["B=2", "C=3"], ["sh", "-c", "echo hi"])
    assert new.replicated.replicas == 5 and list(new.task.placement.constraints) == ["node.labels.ssd==true"]
    assert [m.target for m in c.mounts] == ["/data"] and dict(new.labels) == {}
    r = new.task.restart
    assert (r.condition, r.max_attempts, r.delay_ns) == (specs.RestartPolicy.ON_FAILURE, 3, 2 * 10**9)
    assert new.update.order == specs.UpdateConfig.START_FIRST and new.update.parallelism == 1
    assert update(current) == current, "no flags: nothing changes"
    assert update(current, "--force").task.force_update == current.task.force_update + 1
    with pytest.raises(InvalidArgument, match="--replicas can only be used with replicated mode"):
        update(create("--mode", "global"), "--replicas", "2")


S = 10**9
UP = 1_700_000_000 * S  # "now" in these task lists


def web(tid, slot, node_id, desired, state, created, updated, image="app:v1"):
    t = task(tid, slot, service_name="web", node_id=node_id, desired=desired, state=state,
             created=UP + created * S, at=UP + updated * S, image=image)
    t.meta.updated_at_ns = UP + updated * S
    return t


# Host loss: w1 (node "a...") went Down; its task was told to shut down and replaced on
# m1 (node "z..."), then orphaned later still. ListTasks gives them in this order.
HOST_LOSS = [web("old1", 1, "a" * 25, pb.SHUTDOWN, pb.ORPHANED, created=0, updated=40),
             web("new1", 1, "z" * 25, pb.RUNNING, pb.RUNNING, created=20, updated=21),
             web("ok2", 2, "m" * 25, pb.RUNNING, pb.RUNNING, created=0, updated=1)]
# Rollback of slot 1 (v1 -> v2 -> v1): the v2 task, shut down last, is the one updated last.
ROLLBACK = [web("v1", 1, "a" * 25, pb.SHUTDOWN, pb.SHUTDOWN, created=0, updated=10),
            web("v2", 1, "b" * 25, pb.SHUTDOWN, pb.SHUTDOWN, created=10, updated=31, image="app:v2"),
            web("back", 1, "c" * 25, pb.RUNNING, pb.RUNNING, created=30, updated=32)]


def ps_rows(capsys, tasks):
    class Control:
        def ListTasks(self, request):
            return control_pb2.ListTasksResponse(tasks=tasks)

        def ListNodes(self, request):
            return control_pb2.ListNodesResponse()

    conn = type("Conn", (), {"control": Control()})()
    service.list_tasks(conn, parse("service", "ps", "web"))
    return [row.split()[:3] for row in capsys.readouterr().out.splitlines()[1:]]


@pytest.mark.parametrize("tasks, expected", [
    (HOST_LOSS, [["new1", "web.1", "app:v1"], ["old1", "\\_", "web.1"], ["ok2", "web.2", "app:v1"]]),
    (list(reversed(HOST_LOSS)), [["new1", "web.1", "app:v1"], ["old1", "\\_", "web.1"], ["ok2", "web.2", "app:v1"]]),
    (ROLLBACK, [["back", "web.1", "app:v1"], ["v2", "\\_", "web.1"], ["v1", "\\_", "web.1"]]),
])
def test_ps_shows_the_current_task_of_a_slot_first_then_its_history_newest_first(capsys, tasks, expected):
    assert ps_rows(capsys, tasks) == expected


def test_ps_without_a_live_task_shows_the_newest_first():
    gone = [web("a", 1, "n1", pb.SHUTDOWN, pb.SHUTDOWN, created=0, updated=50),
            web("b", 1, "n1", pb.REMOVE, pb.SHUTDOWN, created=10, updated=20)]
    assert [t.id for t in ps_order(gone)] == ["b", "a"]


def test_ps_shows_a_global_service_node_by_node():
    agent = [task(i, 0, service_name="agent", node_id=n, desired=d, created=c)
             for i, n, d, c in (("x", "n2", pb.RUNNING, 5), ("y", "n1", pb.SHUTDOWN, 9), ("z", "n1", pb.RUNNING, 1))]
    assert [t.id for t in ps_order(agent)] == ["z", "y", "x"]


@pytest.mark.parametrize("flag", ["--replicas", "--replicas-max-per-node", "--restart-max-attempts",
                                  "--health-retries", "--update-parallelism"])
def test_negative_counts_are_refused_by_name(flag):
    with pytest.raises(InvalidArgument, match=f"{flag} must be 0 or more"):
        create(flag, "-1")


def test_ps_explain_says_why_a_task_waits_for_its_addresses(capsys):
    reason = "no free address on network back (10.0.3.0/24 is full)"
    waiting = task("t1", 1, service_name="web", state=pb.NEW)
    waiting.explanation.text = waiting.status.err = reason

    class Control:
        def ListTasks(self, request):
            return control_pb2.ListTasksResponse(tasks=[waiting])

        def ListNodes(self, request):
            return control_pb2.ListNodesResponse()

    service.list_tasks(type("Conn", (), {"control": Control()})(), parse("service", "ps", "--explain", "web"))
    out = capsys.readouterr().out
    assert f"web.1 cannot be given its addresses: {reason}" in out
    assert "New" in out.splitlines()[1] and reason in out.splitlines()[1]


def test_network_dns_and_hosts_flags():
    s = create("--network", "front", "--network", "name=back,alias=api,alias=v1,driver-opt=k=v",
               "--endpoint-mode", "dnsrr", "--dns", "10.0.0.53", "--dns-search", "example.com",
               "--dns-option", "ndots:2", "--hostname", "{{.Service.Name}}-{{.Task.Slot}}",
               "--host", "db:10.0.0.5", "--host", "six:fd00::1")
    front, back = s.task.networks
    assert (front.target, list(front.aliases)) == ("front", [])
    assert (back.target, list(back.aliases), dict(back.driver_attachment_opts)) == ("back", ["api", "v1"], {"k": "v"})
    assert s.endpoint.mode == specs.EndpointSpec.DNSRR
    dns = s.task.container.dns_config
    assert (list(dns.nameservers), list(dns.search), list(dns.options)) == (["10.0.0.53"], ["example.com"], ["ndots:2"])
    assert s.task.container.hostname == "{{.Service.Name}}-{{.Task.Slot}}"
    assert list(s.task.container.hosts) == ["10.0.0.5 db", "fd00::1 six"]    # as Docker stores them
    assert create().endpoint.mode == specs.EndpointSpec.VIP


@pytest.mark.parametrize("flags, says", [
    (["--dns", "resolver"], "invalid --dns 'resolver': not an IP address"),
    (["--host", "db"], "invalid --host 'db': use NAME:IP"),
    (["--host", "db:10.0.0.300"], "not an IP address"),
    (["--network", "alias=a"], "name=NETWORK is required"),
    (["--network", "name=n,colour=red"], "unknown field 'colour'"),
    (["--network", "n", "--network", "name=n,alias=a"], "network 'n' is given twice"),
    (["--hostname", "{{.Task.Colour}}"], "invalid --hostname"),
    (["--dns-search", "a b"], "invalid --dns-search"),
])
def test_bad_network_flags_are_named(flags, says):
    with pytest.raises(InvalidArgument, match=says):
        create(*flags)


def test_unknown_endpoint_mode_is_refused(capsys):
    with pytest.raises(SystemExit):
        create("--endpoint-mode", "round-robin")
    assert "invalid choice: 'round-robin'" in capsys.readouterr().err


def test_update_adds_and_removes_networks_dns_and_hosts():
    current = create("--network", "front", "--network", "back", "--dns", "10.0.0.53", "--dns-search", "a.example",
                     "--dns-option", "ndots:2", "--host", "db:10.0.0.5", "--host", "db:10.0.0.6",
                     "--host", "c:10.0.0.7")
    s = update(current, "--network-rm", "front", "--network-add", "name=extra,alias=x", "--dns-rm", "10.0.0.53",
               "--dns-add", "10.0.0.54", "--dns-search-rm", "a.example", "--dns-search-add", "b.example",
               "--dns-option-rm", "ndots:2", "--dns-option-add", "rotate", "--host-rm", "db",
               "--host-add", "e:10.0.0.8", "--hostname", "{{.Node.Hostname}}", "--endpoint-mode", "dnsrr")
    assert [(n.target, list(n.aliases)) for n in s.task.networks] == [("back", []), ("extra", ["x"])]
    dns = s.task.container.dns_config
    assert (list(dns.nameservers), list(dns.search), list(dns.options)) == (["10.0.0.54"], ["b.example"], ["rotate"])
    assert list(s.task.container.hosts) == ["10.0.0.7 c", "10.0.0.8 e"]
    assert s.task.container.hostname == "{{.Node.Hostname}}" and s.endpoint.mode == specs.EndpointSpec.DNSRR
    one = update(current, "--host-rm", "db:10.0.0.6")
    assert list(one.task.container.hosts) == ["10.0.0.5 db", "10.0.0.7 c"]
    with pytest.raises(InvalidArgument, match="already attached to network back"):
        update(current, "--network-add", "back")
    assert update(current, "--replicas", "3").task.networks == current.task.networks   # untouched


def test_inspect_shows_docker_s_endpoint_and_pretty_shows_networks(capsys):
    spec = create("--network", "name=back,alias=api", "--hostname", "h-{{.Task.Slot}}", "--dns", "10.0.0.53")
    svc = pb.Service(id="s1", spec=spec, virtual_ips=[pb.VirtualIP(network_id="n1", addr="10.0.1.2/24")])

    class Control:
        def GetService(self, request):
            return control_pb2.GetServiceResponse(service=svc)
    conn = type("Conn", (), {"control": Control()})()
    service.inspect_services(conn, parse("service", "inspect", "web"))
    (shown,) = json.loads(capsys.readouterr().out)
    assert shown["Endpoint"] == {"Spec": {"Mode": "vip"}, "VirtualIPs": [{"NetworkID": "n1", "Addr": "10.0.1.2/24"}]}
    assert shown["spec"]["task"]["networks"] == [{"target": "back", "aliases": ["api"]}]
    text = pretty_service(svc, [])
    for line in ("Networks:", " back (aliases: api)", "Endpoint Mode:  vip", "Virtual IPs:", " n1: 10.0.1.2/24"):
        assert line in text.splitlines()
    assert "Hostname:" in text and "10.0.0.53" in text


def test_network_add_and_rm_compare_networks_by_id():
    """The managers store each attachment's network by ID; users name them."""
    current = create("--network", "front")
    current.task.networks[0].target = "id-front"
    ids = {"front": "id-front", "back": "id-back"}
    s = edit_spec(parse("service", "update", "--network-rm", "front", "--network-add", "back", "web"), current,
                  lambda ref: ids.get(ref, ref))
    assert [n.target for n in s.task.networks] == ["back"]
    with pytest.raises(InvalidArgument, match="already attached to network front"):
        edit_spec(parse("service", "update", "--network-add", "front", "web"), current, lambda ref: ids.get(ref, ref))


def test_update_resolves_networks_through_the_managers(capsys):
    class Control:
        def __init__(self):
            spec = create("--network", "name=front,alias=www")
            spec.task.networks[0].target = "f" * 25
            self.service, self.updated = pb.Service(id="s1", spec=spec), None

        def GetService(self, request):
            return control_pb2.GetServiceResponse(service=self.service)

        def ListNetworks(self, request):
            return control_pb2.ListNetworksResponse(networks=[
                pb.Network(id="f" * 25, spec=specs.NetworkSpec(name="front")),
                pb.Network(id="b" * 25, spec=specs.NetworkSpec(name="back"))])

        def UpdateService(self, request):
            self.updated = request.spec
            return control_pb2.UpdateServiceResponse(service=pb.Service(id="s1", spec=request.spec))

    control = Control()
    conn = type("Conn", (), {"control": control})()
    service.update_service(conn, parse("service", "update", "-d", "--network-rm", "fff", "--network-add", "back",
                                       "web"))
    assert [n.target for n in control.updated.task.networks] == ["back"]
    svc = pb.Service(spec=control.service.spec, virtual_ips=[pb.VirtualIP(network_id="f" * 25, addr="10.0.0.2/24")])
    text = pretty_service(svc, [], {"f" * 25: "front"}).splitlines()
    assert " front (aliases: www)" in text and " front: 10.0.0.2/24" in text


def test_service_host_flag_leaves_covey_s_own_host_alone():
    from covey.cli.main import build_parser
    args = build_parser().parse_args(["-H", "unix:///tmp/x.sock", "service", "create", "--name", "web",
                                      "--host", "db:10.0.0.5", "img"])
    assert args.host == "unix:///tmp/x.sock" and args.extra_hosts == ["db:10.0.0.5"]


def test_tables_show_a_pinned_image_by_its_tag_as_docker_does():
    assert service.shown_image("10.1.0.1:5000/covey/front:1@sha256:" + "a" * 64) == "10.1.0.1:5000/covey/front:1"
    assert service.shown_image("busybox@sha256:" + "b" * 64) == "busybox@sha256:" + "b" * 64
    assert service.shown_image("registry:5000/busybox") == "registry:5000/busybox"
