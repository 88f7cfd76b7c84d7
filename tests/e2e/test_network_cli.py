"""`covey network` and the service network flags through the CLI, against a one-host swarm's
real coveyd: what a user types and sees (Docker's columns and inspect JSON, errors, exits)."""
import json

import pytest

from deploy.lab import Lab


@pytest.fixture(scope="module")
def swarm():
    lab = Lab(1).up()
    try:
        lab.form_swarm()
        yield lab
    finally:
        lab.down()


def covey(lab: Lab, *args: str, check: bool = True):
    return lab.covey(lab.hosts[0], *args, check=check)


def test_create_ls_inspect_rm_and_prune(swarm):
    back_id = covey(swarm, "network", "create", "-d", "overlay", "--subnet", "10.77.0.0/24", "--gateway",
                    "10.77.0.254", "--ip-range", "10.77.0.0/25", "--label", "tier=db", "--opt",
                    "com.docker.network.driver.mtu=1400", "--internal", "cli-back").stdout.strip()
    front_id = covey(swarm, "network", "create", "--attachable", "cli-front").stdout.strip()
    assert len(back_id) == 25 and len(front_id) == 25

    clash = covey(swarm, "network", "create", "--subnet", "10.77.0.0/25", "cli-clash", check=False)
    assert clash.returncode == 1 and "overlaps network cli-back" in clash.stderr
    bad = covey(swarm, "network", "create", "--subnet", "10.77.1.0/24", "--gateway", "10.77.2.1", "x", check=False)
    assert bad.returncode == 1 and "not in the subnet 10.77.1.0/24" in bad.stderr

    lines = covey(swarm, "network", "ls", "--filter", "name=cli-").stdout.splitlines()
    assert lines[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
    assert [line.split() for line in lines[1:]] == [[back_id[:12], "cli-back", "overlay", "swarm"],
                                                    [front_id[:12], "cli-front", "overlay", "swarm"]]
    assert covey(swarm, "network", "ls", "-q", "-f", "label=tier=db").stdout.split() == [back_id[:12]]

    (back,) = json.loads(covey(swarm, "network", "inspect", "cli-back").stdout)
    assert (back["Name"], back["Id"], back["Scope"], back["Driver"]) == ("cli-back", back_id, "swarm", "overlay")
    assert back["IPAM"]["Config"] == [{"Subnet": "10.77.0.0/24", "Gateway": "10.77.0.254",
                                       "IPRange": "10.77.0.0/25"}]
    assert (back["Internal"], back["Attachable"], back["Labels"]) == (True, False, {"tier": "db"})
    assert back["Options"]["com.docker.network.driver.mtu"] == "1400" and back["VNI"] >= 4096

    covey(swarm, "service", "create", "-d", "--name", "cli-web", "--replicas", "0",
          "--network", "name=cli-back,alias=api", "busybox")
    removed = covey(swarm, "network", "rm", "cli-front", "cli-back", "cli-nope", check=False)
    assert removed.returncode == 1 and removed.stdout.split() == ["cli-front"]
    assert "cli-back is in use by service(s) cli-web" in removed.stderr and "cli-nope not found" in removed.stderr
    covey(swarm, "service", "rm", "cli-web")
    covey(swarm, "network", "create", "cli-unused")
    pruned = covey(swarm, "network", "prune", "-f").stdout
    assert pruned.startswith("Deleted Networks:\n") and {"cli-back", "cli-unused"} <= set(pruned.split()[2:])
    assert covey(swarm, "network", "ls", "-q", "-f", "name=cli-").stdout.strip() == ""


def test_service_network_flags_and_what_inspect_shows(swarm):
    covey(swarm, "network", "create", "svc-back")
    covey(swarm, "network", "create", "svc-front")
    covey(swarm, "service", "create", "-d", "--name", "svc-web", "--replicas", "0",
          "--network", "name=svc-back,alias=api", "--network", "svc-front", "--endpoint-mode", "vip",
          "--dns", "10.0.0.53", "--dns-search", "example.com", "--dns-option", "ndots:2",
          "--hostname", "{{.Service.Name}}-{{.Task.Slot}}", "--host", "db:10.0.0.5", "busybox")
    (shown,) = json.loads(covey(swarm, "service", "inspect", "svc-web").stdout)
    container = shown["spec"]["task"]["container"]
    assert container["hosts"] == ["10.0.0.5 db"] and container["hostname"] == "{{.Service.Name}}-{{.Task.Slot}}"
    assert container["dns_config"] == {"nameservers": ["10.0.0.53"], "search": ["example.com"],
                                       "options": ["ndots:2"]}
    assert shown["Endpoint"]["Spec"] == {"Mode": "vip"} and len(shown["Endpoint"]["VirtualIPs"]) == 2
    pretty = covey(swarm, "service", "inspect", "--pretty", "svc-web").stdout.splitlines()
    assert " svc-back (aliases: api)" in pretty and " svc-front" in pretty

    covey(swarm, "service", "update", "-d", "--network-rm", "svc-front", "--dns-rm", "10.0.0.53",
          "--host-add", "cache:10.0.0.6", "--endpoint-mode", "dnsrr", "svc-web")
    (updated,) = json.loads(covey(swarm, "service", "inspect", "svc-web").stdout)
    assert len(updated["spec"]["task"]["networks"]) == 1 and updated["Endpoint"]["Spec"] == {"Mode": "dnsrr"}
    assert updated["spec"]["task"]["container"]["hosts"] == ["10.0.0.5 db", "10.0.0.6 cache"]
    again = covey(swarm, "service", "update", "-d", "--network-add", "svc-back", "svc-web", check=False)
    assert again.returncode == 1 and "already attached to network svc-back" in again.stderr
    unknown = covey(swarm, "service", "create", "-d", "--name", "svc-lost", "--network", "nowhere", "busybox",
                    check=False)
    assert unknown.returncode == 1 and "nowhere" in unknown.stderr
    bad = covey(swarm, "service", "create", "-d", "--name", "svc-bad", "--host", "db", "busybox", check=False)
    assert bad.returncode == 1 and "invalid --host 'db': use NAME:IP" in bad.stderr
