"""Conversion of a compose model into the StackSpec that stack deploy sends."""
import pytest

from covey.compose import ComposeError, load_stack
from proto import specs_pb2 as specs
from tests.unit.compose.compose_testlib import as_dict, stack, write

FULL = """
services:
  web:
    image: nginx:1
    entrypoint: /docker-entrypoint.sh
    command: nginx -g 'daemon off;'
    environment: {B: "2", A: "1", FROM_ENV: null}
    env_file: web.env
    labels: {c: container}
    hostname: "{{.Service.Name}}-{{.Task.Slot}}"
    user: "101:101"
    working_dir: /srv
    stop_grace_period: 1m30s
    stop_signal: SIGQUIT
    read_only: true
    init: true
    cap_add: [NET_ADMIN]
    cap_drop: [ALL]
    sysctls: [net.core.somaxconn=1024]
    ulimits: {nofile: {soft: 1024, hard: 2048}, nproc: 65535}
    logging: {driver: json-file, options: {max-size: 10m}}
    dns: 8.8.8.8
    dns_search: [example.com]
    extra_hosts: ["db:10.0.0.5"]
    tmpfs: /run
    healthcheck: {test: curl -f localhost, interval: 10s, timeout: 2s, retries: 3, start_period: 1s}
    ports:
      - "80:8080"
      - "53:53/udp"
      - {target: 443, published: 8443, mode: host}
      - "9000-9001:7000-7001"
    networks:
      front: {aliases: [www]}
    volumes:
      - data:/data:nocopy
      - ./conf:/etc/nginx/conf.d:ro
      - {type: tmpfs, target: /cache, tmpfs: {size: 64m}}
      - /anon
    secrets: [tls, {source: key, target: /etc/key.pem, uid: "101", mode: 0400}]
    configs: [site]
    deploy:
      mode: replicated
      replicas: 3
      endpoint_mode: vip
      labels: {s: service}
      placement:
        constraints: [node.role == worker]
        preferences: [{spread: node.labels.zone}]
        max_replicas_per_node: 2
      resources:
        limits: {cpus: "0.5", memory: 512M, pids: 100}
        reservations:
          cpus: 0.25
          memory: 128M
          generic_resources: [{discrete_resource_spec: {kind: gpu, value: 2}}]
      restart_policy: {condition: on-failure, delay: 5s, max_attempts: 3, window: 2m}
      update_config: {parallelism: 2, delay: 10s, failure_action: rollback, monitor: 30s,
                      max_failure_ratio: 0.25, order: start-first}
      rollback_config: {parallelism: 0, failure_action: continue}
networks:
  front:
    driver: overlay
    attachable: true
    internal: true
    driver_opts: {encrypted: "yes"}
    ipam: {config: [{subnet: 10.9.0.0/24}]}
  ext: {external: true, name: shared-net}
volumes:
  data: {driver: local, driver_opts: {type: nfs}, labels: {v: "1"}}
secrets:
  tls: {file: ./tls.pem}
  key: {external: true}
configs:
  site: {file: ./site.conf}
"""


@pytest.fixture
def full(tmp_path):
    (tmp_path / "web.env").write_text("A=from-file\nC=3\n")
    (tmp_path / "tls.pem").write_text("CERT")
    (tmp_path / "site.conf").write_text("server {}")
    return stack(tmp_path, FULL, environ={"FROM_ENV": "env"}, name="shop"), tmp_path


def test_container(full):
    spec, tmp = full
    c = spec.services[0].task.container
    assert c.image == "nginx:1"
    assert list(c.command) == ["/docker-entrypoint.sh"]
    assert list(c.args) == ["nginx", "-g", "daemon off;"]
    assert list(c.env) == ["A=1", "B=2", "C=3", "FROM_ENV=env"]
    assert c.labels == {"c": "container", "com.docker.stack.namespace": "shop"}
    assert c.hostname == "{{.Service.Name}}-{{.Task.Slot}}"
    assert (c.user, c.dir, c.stop_signal) == ("101:101", "/srv", "SIGQUIT")
    assert c.stop_grace_period_ns == 90 * 10**9 and c.read_only and c.init
    assert list(c.capability_add) == ["NET_ADMIN"] and list(c.capability_drop) == ["ALL"]
    assert c.sysctls == {"net.core.somaxconn": "1024"}
    assert [(u.name, u.soft, u.hard) for u in c.ulimits] == [("nofile", 1024, 2048),
                                                              ("nproc", 65535, 65535)]
    assert list(c.dns_config.nameservers) == ["8.8.8.8"] and list(c.hosts) == ["10.0.0.5 db"]
    assert list(c.healthcheck.test) == ["CMD-SHELL", "curl -f localhost"]
    assert (c.healthcheck.interval_ns, c.healthcheck.retries) == (10 * 10**9, 3)


def test_mounts(full):
    spec, tmp = full
    mounts = {m.target: m for m in spec.services[0].task.container.mounts}
    data = mounts["/data"]
    assert data.type == specs.Mount.VOLUME and data.source == "shop_data"
    assert data.volume_options.no_copy and data.volume_options.driver_config.name == "local"
    assert data.volume_options.driver_config.options == {"type": "nfs"}
    assert data.volume_options.labels == {"v": "1", "com.docker.stack.namespace": "shop"}
    conf = mounts["/etc/nginx/conf.d"]
    assert conf.type == specs.Mount.BIND and conf.source == str(tmp / "conf") and conf.read_only
    assert mounts["/cache"].tmpfs_options.size_bytes == 64 << 20
    assert mounts["/run"].type == specs.Mount.TMPFS
    assert mounts["/anon"].type == specs.Mount.VOLUME and mounts["/anon"].source == ""


def test_secrets_and_configs(full):
    spec, _ = full
    c = spec.services[0].task.container
    tls, key = c.secrets
    assert (tls.secret_name, tls.file.name, tls.file.uid, tls.file.mode) == ("shop_tls", "tls", "0", 0o444)
    assert (key.secret_name, key.file.name, key.file.uid, key.file.mode) == ("key", "/etc/key.pem", "101", 0o400)
    assert (c.configs[0].config_name, c.configs[0].file.name) == ("shop_site", "/site")
    assert [(s.name, s.data) for s in spec.secrets] == [("shop_tls", b"CERT")]
    assert [(s.name, s.data) for s in spec.configs] == [("shop_site", b"server {}")]
    assert list(spec.external_secrets) == ["key"]


def test_deploy(full):
    spec, _ = full
    s = spec.services[0]
    assert s.name == "shop_web" and s.replicated.replicas == 3
    assert s.labels["s"] == "service" and s.labels["com.docker.stack.namespace"] == "shop"
    p = s.task.placement
    assert list(p.constraints) == ["node.role == worker"] and p.preferences[0].spread == "node.labels.zone"
    assert p.max_replicas == 2
    r = s.task.resources
    assert (r.limits.nano_cpus, r.limits.memory_bytes, r.limits.pids) == (5 * 10**8, 512 << 20, 100)
    assert (r.reservations.nano_cpus, r.reservations.memory_bytes) == (25 * 10**7, 128 << 20)
    assert as_dict(r.reservations.generic[0]) == {"kind": "gpu", "discrete": "2"}
    rp = s.task.restart
    assert (rp.condition, rp.delay_ns, rp.max_attempts, rp.window_ns) == (
        specs.RestartPolicy.ON_FAILURE, 5 * 10**9, 3, 120 * 10**9)
    u = s.update
    assert (u.parallelism, u.delay_ns, u.failure_action, u.monitor_ns, u.order) == (
        2, 10 * 10**9, specs.UpdateConfig.ROLLBACK, 30 * 10**9, specs.UpdateConfig.START_FIRST)
    assert u.max_failure_ratio == pytest.approx(0.25)
    assert (s.rollback.parallelism, s.rollback.failure_action) == (0, specs.UpdateConfig.CONTINUE)
    assert (s.task.log_driver.name, s.task.log_driver.options["max-size"]) == ("json-file", "10m")


def test_ports(full):
    spec, _ = full
    ports = [(p.protocol, p.target_port, p.published_port, p.publish_mode)
             for p in spec.services[0].endpoint.ports]
    pc = specs.PortConfig
    tcp, udp, ingress, host = pc.TCP, pc.UDP, pc.INGRESS, pc.HOST
    assert ports == [(tcp, 8080, 80, ingress), (udp, 53, 53, ingress), (tcp, 443, 8443, host),
                     (tcp, 7000, 9000, ingress), (tcp, 7001, 9001, ingress)]


def test_networks(full):
    spec, _ = full
    attach = spec.services[0].task.networks[0]
    assert attach.target == "shop_front" and list(attach.aliases) == ["www", "web"]
    (net,) = spec.networks
    assert (net.name, net.driver_config.name, net.attachable, net.internal) == (
        "shop_front", "overlay", True, True)
    assert net.driver_config.options == {"encrypted": "yes"}
    assert net.ipam.configs[0].subnet == "10.9.0.0/24"
    assert list(spec.external_networks) == ["shared-net"]
    assert spec.volumes[0].name == "shop_data"


def test_default_network(tmp_path):
    spec = stack(tmp_path, "services: {a: {image: x}}\n", name="st")
    assert spec.services[0].task.networks[0].target == "st_default"
    assert [n.name for n in spec.networks] == ["st_default"]
    assert spec.networks[0].driver_config.name == "overlay"


@pytest.mark.parametrize("mode,field", [("global", "global"), ("replicated-job", "replicated_job"),
                                        ("global-job", "global_job")])
def test_modes(tmp_path, mode, field):
    spec = stack(tmp_path, f"services: {{a: {{image: x, deploy: {{mode: {mode}}}}}}}\n")
    assert spec.services[0].WhichOneof("mode") == field


def test_dnsrr_with_ingress_ports_is_an_error(tmp_path):
    with pytest.raises(ComposeError, match="dnsrr"):
        stack(tmp_path, "services: {a: {image: x, ports: ['80:80'], deploy: {endpoint_mode: dnsrr}}}\n")


def test_missing_secret_file_fails_at_deploy(tmp_path):
    path = write(tmp_path, "services: {a: {image: x, secrets: [s]}}\nsecrets:\n  s: {file: ./nope}\n")
    with pytest.raises(ComposeError) as info:
        load_stack([path], environ={}, stack_name="s")
    assert "cannot read secret 's'" in str(info.value) and info.value.line == 3


def test_stack_name_from_compose_name_or_required(tmp_path):
    path = write(tmp_path, "name: fromfile\nservices: {a: {image: x}}\n")
    assert load_stack([path], environ={})[0].name == "fromfile"
    bare = write(tmp_path, "services: {a: {image: x}}\n", "b.yml")
    with pytest.raises(ComposeError, match="stack name is required"):
        load_stack([bare], environ={})
    with pytest.raises(ComposeError, match="invalid stack name"):
        load_stack([bare], environ={}, stack_name="bad name")


def test_network_fields_land_where_the_service_flags_put_them(tmp_path):
    """Compose's dns_opt, dnsrr, list-form networks and extra_hosts: the same fields as
    `service create --dns-option / --endpoint-mode / --network / --host`."""
    spec = stack(tmp_path, """
        services:
          api:
            image: x
            dns: [10.0.0.53, 10.0.0.54]
            dns_opt: [ndots:2]
            extra_hosts: {db: 10.0.0.5}
            networks: [back, front]
            deploy: {endpoint_mode: dnsrr}
        networks: {back: {}, front: {}}
    """)
    svc = spec.services[0]
    dns = svc.task.container.dns_config
    assert (list(dns.nameservers), list(dns.options)) == (["10.0.0.53", "10.0.0.54"], ["ndots:2"])
    assert list(svc.task.container.hosts) == ["10.0.0.5 db"]
    assert svc.endpoint.mode == specs.EndpointSpec.DNSRR
    assert [(n.target, list(n.aliases)) for n in svc.task.networks] == [("s_back", ["api"]), ("s_front", ["api"])]
