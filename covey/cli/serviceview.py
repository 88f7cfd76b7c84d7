"""`covey service inspect --pretty`: a service as Docker prints it, plus why tasks wait."""
import datetime

from covey.cli import fileflags, ports
from covey.units import format_bytes, format_duration
from proto import objects_pb2 as pb
from proto import specs_pb2 as specs

# Docker's words for the spec's enums (the flags of `service create` take them too).
RESTART = {"none": specs.RestartPolicy.NONE, "on-failure": specs.RestartPolicy.ON_FAILURE,
           "any": specs.RestartPolicy.ANY}
FAILURE_ACTION = {"pause": specs.UpdateConfig.PAUSE, "continue": specs.UpdateConfig.CONTINUE,
                  "rollback": specs.UpdateConfig.ROLLBACK}
ORDER = {"stop-first": specs.UpdateConfig.STOP_FIRST, "start-first": specs.UpdateConfig.START_FIRST}
MOUNT_TYPES = {"bind": specs.Mount.BIND, "volume": specs.Mount.VOLUME, "tmpfs": specs.Mount.TMPFS}
ENDPOINT_MODES = {"vip": specs.EndpointSpec.VIP, "dnsrr": specs.EndpointSpec.DNSRR}
WORD = {table: {value: word for word, value in words.items()}
        for table, words in (("restart", RESTART), ("failure", FAILURE_ACTION), ("order", ORDER),
                             ("mount", MOUNT_TYPES), ("endpoint", ENDPOINT_MODES))}
DEFAULT_MONITOR_NS = 5 * 10**9
DEFAULT_RESTART_DELAY_NS = 5 * 10**9


def _time(nanos: int) -> str:
    return datetime.datetime.fromtimestamp(nanos / 1e9, datetime.UTC).isoformat(timespec="seconds")


def _rollout(title: str, c: specs.UpdateConfig) -> list[str]:
    monitor = c.monitor_ns if c.HasField("monitor_ns") else DEFAULT_MONITOR_NS
    return [f"{title}:", f" Parallelism:\t{c.parallelism or 'all at once'}",
            *([f" Delay:\t\t{format_duration(c.delay_ns)}"] if c.delay_ns else []),
            f" On failure:\t{WORD['failure'][c.failure_action]}", f" Monitoring Period: {format_duration(monitor)}",
            f" Max failure ratio: {c.max_failure_ratio:g}", f" Update order:\t{WORD['order'][c.order]}"]


def _resources(title: str, r: specs.TaskResources) -> list[str]:
    lines = ([f"  CPU:\t\t{r.nano_cpus / 1e9:g}"] if r.nano_cpus else []) + \
            ([f"  Memory:\t{format_bytes(r.memory_bytes)}"] if r.memory_bytes else [])
    return [f" {title}:", *lines] if lines else []


def pretty_service(service: pb.Service, tasks: list[pb.Task], network_names: dict[str, str] | None = None) -> str:
    """`network_names`: by network ID (the spec names networks by ID)."""
    s, task = service.spec, service.spec.task
    c = task.container
    lines = [f"ID:\t\t{service.id}", f"Name:\t\t{s.name}"]
    if s.labels:
        lines += ["Labels:", *(f" {k}={v}" for k, v in sorted(s.labels.items()))]
    if s.WhichOneof("mode") == "global":
        lines.append("Service Mode:\tGlobal")
    elif s.WhichOneof("mode") == "global_job":
        lines.append("Service Mode:\tGlobal job")
    elif s.WhichOneof("mode") == "replicated_job":
        job = s.replicated_job
        lines += ["Service Mode:\tReplicated job", f" Max Concurrent:\t{job.max_concurrent or job.total_completions}",
                  f" Total Completions:\t{job.total_completions}"]
    else:
        lines += ["Service Mode:\tReplicated", f" Replicas:\t{s.replicated.replicas}"]
    status = service.update_status
    if status.state:
        lines += ["UpdateStatus:", f" State:\t\t{pb.UpdateStatus.State.Name(status.state).lower()}",
                  f" Started:\t{_time(status.started_at_ns)}"]
        if status.completed_at_ns:
            lines.append(f" Completed:\t{_time(status.completed_at_ns)}")
        lines.append(f" Message:\t{status.message}")
    p = task.placement
    if p.constraints or p.preferences or p.max_replicas:
        lines.append("Placement:")
        if p.constraints:
            lines.append(f" Constraints:\t[{' '.join(p.constraints)}]")
        if p.preferences:
            lines.append(f" Preferences:\t[{' '.join(f'spread={x.spread}' for x in p.preferences)}]")
        if p.max_replicas:
            lines.append(f" Max Replicas Per Node: {p.max_replicas}")
    r = task.restart
    delay = r.delay_ns if r.HasField("delay_ns") else DEFAULT_RESTART_DELAY_NS
    lines += ["RestartPolicy:", f" Condition:\t{WORD['restart'][r.condition] if task.HasField('restart') else 'any'}",
              f" Delay:\t\t{format_duration(delay)}",
              f" Max attempts:\t{r.max_attempts or 'unlimited'}"]
    if r.window_ns:
        lines.append(f" Window:\t{format_duration(r.window_ns)}")
    lines += _rollout("UpdateConfig", s.update) + _rollout("RollbackConfig", s.rollback)
    lines += ["ContainerSpec:", f" Image:\t\t{c.image}"]
    if c.command:
        lines.append(f" Command:\t{' '.join(c.command)}")
    if c.args:
        lines.append(f" Args:\t\t{' '.join(c.args)}")
    if c.env:
        lines.append(f" Env:\t\t{' '.join(c.env)}")
    if c.healthcheck.test:
        lines.append(f" Healthcheck:\t{' '.join(c.healthcheck.test)}")
    if c.mounts:
        lines.append("Mounts:")
        lines += [f" Target:\t{m.target}\n  Source:\t{m.source}\n  ReadOnly:\t{str(m.read_only).lower()}"
                  f"\n  Type:\t\t{WORD['mount'].get(m.type, m.type)}" for m in c.mounts]
    lines += fileflags.pretty_lines(c)
    lines += _network_lines(service, network_names or {})
    resources = _resources("Reservations", task.resources.reservations) + _resources("Limits", task.resources.limits)
    if resources:
        lines += ["Resources:", *resources]
    lines += _waiting(tasks)
    return "\n".join(line.expandtabs(8) for line in "\n".join(lines).splitlines())


def endpoint_view(service: pb.Service) -> dict:
    """Docker's Endpoint of `service inspect`: the mode and ports asked for, the ports as
    published (numbers chosen), the VIP on each network."""
    spec: dict = {"Mode": WORD["endpoint"][service.spec.endpoint.mode]}
    if service.spec.endpoint.ports:
        spec["Ports"] = ports.endpoint_ports(service.spec.endpoint.ports)
    view: dict = {"Spec": spec}
    if service.ports:
        view["Ports"] = ports.endpoint_ports(service.ports)
    view["VirtualIPs"] = [{"NetworkID": v.network_id, "Addr": v.addr} for v in service.virtual_ips]
    return view


def _network_lines(service: pb.Service, names: dict[str, str]) -> list[str]:
    c, lines = service.spec.task.container, []
    if c.hostname:
        lines.append(f" Hostname:\t{c.hostname}")
    if c.hosts:
        lines.append(f" Hosts:\t\t{', '.join(c.hosts)}")
    dns = c.dns_config
    for title, values in ((" DNS:\t\t", dns.nameservers), (" DNS Search:\t", dns.search),
                          (" DNS Options:\t", dns.options)):
        if values:
            lines.append(f"{title}{' '.join(values)}")
    if service.spec.task.networks:
        lines.append("Networks:")
        lines += [f" {names.get(n.target, n.target)}" + (f" (aliases: {', '.join(n.aliases)})" if n.aliases else "")
                  for n in service.spec.task.networks]
    lines.append(f"Endpoint Mode:\t{WORD['endpoint'][service.spec.endpoint.mode]}")
    if service.ports:
        lines.append("Ports:")
        lines += [f" PublishedPort = {p['PublishedPort']}\n  Protocol = {p['Protocol']}\n"
                  f"  TargetPort = {p['TargetPort']}\n  PublishMode = {p['PublishMode']}"
                  for p in ports.endpoint_ports(service.ports)]
    if service.virtual_ips:
        lines.append("Virtual IPs:")
        lines += [f" {names.get(v.network_id, v.network_id)}: {v.addr}" for v in service.virtual_ips]
    return lines


def _waiting(tasks: list[pb.Task]) -> list[str]:
    """Why tasks that cannot be placed wait (Docker says only 'Pending')."""
    pending = [t for t in tasks if t.status.state == pb.PENDING and t.explanation.filters]
    if not pending:
        return []
    t = pending[0]
    lines = [f"Pending Tasks:\t{len(pending)}, e.g. {t.id[:12]}: {t.explanation.text}"]
    lines += [f" {f.name}: {f.nodes_excluded} node(s) excluded: {f.reason}" for f in t.explanation.filters]
    return lines


def ps_order(tasks) -> list:
    """`service ps` order, as Docker's: slot by slot (node by node for a global service), the
    slot's current task first, then its history newest first. Current: the live task with the
    highest desired state (newest if several), else the newest. Neither the order ListTasks
    gives nor update times say which is current: a lost host's task is updated last."""
    slots: dict[tuple, list] = {}
    for t in tasks:
        slots.setdefault((t.service_name, t.slot, "" if t.slot else t.node_id), []).append(t)
    return [t for key in sorted(slots) for t in _current_first(slots[key])]


def _current_first(tasks: list) -> list:
    newest_first = sorted(tasks, key=lambda t: -t.meta.created_at_ns)
    live = [t for t in newest_first if t.desired_state <= pb.RUNNING]
    current = max(live, key=lambda t: t.desired_state, default=newest_first[0])  # max keeps the first
    return [current] + [t for t in newest_first if t is not current]
