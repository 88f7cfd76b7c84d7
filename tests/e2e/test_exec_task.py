"""`covey container exec` into a service's task, named as `container ls` shows it (or a prefix
of that, "web.1"): how a user looks at what the network flags gave the container."""
from tests.e2e.swarmtools import REGISTRY, swarm_with_registry


def test_exec_into_a_task_shows_its_hostname_hosts_and_resolver():
    with swarm_with_registry(1) as lab:
        host = lab.hosts[0]
        lab.covey(host, "network", "create", "appnet")
        lab.covey(host, "service", "create", "--name", "web", "--network", "name=appnet,alias=www",
                  "--host", "db:10.0.0.5", "--hostname", "{{.Service.Name}}-{{.Task.Slot}}",
                  "--dns-search", "example.com", f"{REGISTRY}/covey/httpd:v1")
        assert lab.covey(host, "container", "exec", "web.1", "hostname").stdout == "web-1\n"
        hosts = lab.covey(host, "container", "exec", "web.1", "cat", "/etc/hosts").stdout.splitlines()
        assert "10.0.0.5\tdb" in hosts or "10.0.0.5 db" in hosts
        assert any(line.split()[1:] == ["web-1"] for line in hosts if line.strip())
        resolv = lab.covey(host, "container", "exec", "web.1", "cat", "/etc/resolv.conf").stdout.splitlines()
        assert "nameserver 127.0.0.11" in resolv and "search example.com" in resolv
        missing = lab.covey(host, "container", "exec", "db.1", "true", check=False)
        assert missing.returncode == 1 and "no such container: db.1" in missing.stderr
