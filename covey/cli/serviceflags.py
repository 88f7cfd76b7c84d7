"""The flags of `covey service create` and `covey service update` (Docker's names), and the
spec they make or change. Update flags change only what they name; the rest stays."""
import argparse
import ipaddress
import shlex
from collections.abc import Callable, Sequence

from covey.cli import fileflags, ports
from covey.cli.serviceview import ENDPOINT_MODES, FAILURE_ACTION, MOUNT_TYPES, ORDER, RESTART
from covey.errors import InvalidArgument
from covey.units import parse_bytes, parse_duration
from proto import specs_pb2 as specs

MOUNT_HELP = "type=bind|volume|tmpfs,source=S,target=T[,readonly][,tmpfs-size=N]"
NETWORK_HELP = "NAME or name=NAME,alias=A[,alias=B][,driver-opt=K=V]"
PUBLISH_HELP = "[PUBLISHED:]TARGET[/PROTO] or published=P,target=T,protocol=tcp|udp,mode=ingress|host"
# The hostname templates the worker fills in (Docker's names).
HOSTNAME_FIELDS = ("{{.Service.ID}}", "{{.Service.Name}}", "{{.Task.ID}}", "{{.Task.Name}}", "{{.Task.Slot}}",
                   "{{.Node.ID}}", "{{.Node.Hostname}}")


def add_create_flags(parser) -> None:
    parser.add_argument("--name", required=True)
    parser.add_argument("--mode", choices=["replicated", "global", "replicated-job", "global-job"],
                        default="replicated")
    parser.add_argument("--constraint", action="append", default=[])
    parser.add_argument("--placement-pref", action="append", default=[], metavar="spread=node.labels.X")
    parser.add_argument("-e", "--env", action="append", default=[])
    parser.add_argument("--label", action="append", default=[])
    parser.add_argument("--mount", action="append", default=[], metavar=MOUNT_HELP)
    parser.add_argument("--network", action="append", default=[], metavar=NETWORK_HELP)
    parser.add_argument("-p", "--publish", action="append", default=[], metavar=PUBLISH_HELP)
    parser.add_argument("--dns", action="append", default=[], metavar="IP", help="a nameserver")
    parser.add_argument("--dns-search", action="append", default=[], metavar="DOMAIN")
    parser.add_argument("--dns-option", action="append", default=[], metavar="OPTION")
    # dest: not `host`, which is covey's own -H/--host (the daemon to talk to)
    parser.add_argument("--host", dest="extra_hosts", action="append", default=[], metavar="NAME:IP",
                        help="a line of /etc/hosts")
    fileflags.add_create_flags(parser)
    _add_shared_flags(parser)
    parser.add_argument("image")
    parser.add_argument("args", nargs=argparse.REMAINDER, metavar="COMMAND [ARG...]")  # verbatim, as Docker


def add_update_flags(parser) -> None:
    parser.add_argument("--image")
    parser.add_argument("--args", help="the command's arguments, as one shell-quoted string")
    for name, metavar in (("env", "K=V"), ("constraint", "EXPR"), ("placement-pref", "spread=node.labels.X"),
                          ("label", "K=V"), ("mount", MOUNT_HELP), ("network", NETWORK_HELP),
                          ("publish", PUBLISH_HELP), ("dns", "IP"),
                          ("dns-search", "DOMAIN"), ("dns-option", "OPTION"), ("host", "NAME:IP")):
        parser.add_argument(f"--{name}-add", action="append", default=[], metavar=metavar)
    for name, metavar in (("env", "K"), ("constraint", "EXPR"), ("placement-pref", "spread=node.labels.X"),
                          ("label", "K"), ("mount", "TARGET"), ("network", "NAME"),
                          ("publish", "PUBLISHED[:TARGET][/PROTO]"), ("dns", "IP"),
                          ("dns-search", "DOMAIN"), ("dns-option", "OPTION"), ("host", "NAME[:IP]")):
        parser.add_argument(f"--{name}-rm", action="append", default=[], metavar=metavar)
    parser.add_argument("--force", action="store_true", help="redeploy even if nothing changed")
    fileflags.add_update_flags(parser)
    _add_shared_flags(parser)


def _add_shared_flags(parser) -> None:
    parser.add_argument("--replicas", type=int, help="tasks; for a replicated job, the completions wanted")
    parser.add_argument("--max-concurrent", type=int, help="a replicated job's tasks run at once (default: --replicas)")
    parser.add_argument("--replicas-max-per-node", type=int)
    for flag in ("--reserve-cpu", "--limit-cpu"):
        parser.add_argument(flag, type=float)
    for flag in ("--reserve-memory", "--limit-memory"):
        parser.add_argument(flag)
    parser.add_argument("--restart-condition", choices=sorted(RESTART))
    for flag in ("--restart-delay", "--restart-window"):
        parser.add_argument(flag)
    parser.add_argument("--restart-max-attempts", type=int)
    parser.add_argument("--health-cmd", help="a shell command that exits 0 when the task is healthy")
    for flag in ("--health-interval", "--health-timeout", "--health-start-period"):
        parser.add_argument(flag)
    parser.add_argument("--health-retries", type=int)
    parser.add_argument("--no-healthcheck", action="store_true", help="disable the image's healthcheck")
    parser.add_argument("--hostname", metavar="TEMPLATE", help="e.g. {{.Service.Name}}-{{.Task.Slot}}")
    parser.add_argument("--endpoint-mode", choices=sorted(ENDPOINT_MODES),
                        help="vip: one address that balances; dnsrr: the tasks' addresses in DNS")
    for kind in ("update", "rollback"):
        parser.add_argument(f"--{kind}-parallelism", type=int)
        parser.add_argument(f"--{kind}-delay")
        parser.add_argument(f"--{kind}-failure-action",
                            choices=sorted(FAILURE_ACTION) if kind == "update" else ["continue", "pause"])
        parser.add_argument(f"--{kind}-monitor")
        parser.add_argument(f"--{kind}-max-failure-ratio", type=float)
        parser.add_argument(f"--{kind}-order", choices=sorted(ORDER))


# ---------------------------------------------------------------- create

def build_spec(args) -> specs.ServiceSpec:
    s = specs.ServiceSpec(name=args.name)
    s.labels.update(_pairs(args.label, "--label"))
    c = s.task.container
    c.image = args.image
    c.args.extend(args.args)
    c.env.extend(sorted(_check_env(args.env)))
    if args.mode in ("global", "global-job"):
        if args.replicas is not None or args.max_concurrent is not None:
            raise InvalidArgument("--replicas and --max-concurrent can only be used with replicated modes")
        getattr(s, "global" if args.mode == "global" else "global_job").SetInParent()  # a Python keyword
    elif args.mode == "replicated-job":
        s.replicated_job.total_completions = 1
    else:
        s.replicated.replicas = 1
    s.task.placement.constraints.extend(args.constraint)
    s.task.placement.preferences.extend(_preference(p) for p in args.placement_pref)
    c.mounts.extend(_mount(text) for text in args.mount)
    s.task.networks.extend(_attachments(args.network))
    s.endpoint.ports.extend(ports.parse_all(args.publish))
    c.dns_config.nameservers.extend(_nameservers(args.dns))
    c.dns_config.search.extend(_search_domains(args.dns_search))
    c.dns_config.options.extend(args.dns_option)
    c.hosts.extend(_host_line(text) for text in args.extra_hosts)
    fileflags.apply_create(args, c)
    for config in (s.update, s.rollback):
        config.parallelism = 1  # Docker's default: one task at a time
    _apply_shared_flags(args, s)
    return s


# ---------------------------------------------------------------- update

def same_ref(ref: str) -> str:
    return ref


def edit_spec(args, current: specs.ServiceSpec, network_id: Callable[[str], str] = same_ref,
              allocated: Sequence[specs.PortConfig] = ()) -> specs.ServiceSpec:
    """`network_id`: a network's ID from its name, ID or ID prefix (the managers store IDs)."""
    s = specs.ServiceSpec()
    s.CopyFrom(current)
    c, placement = s.task.container, s.task.placement
    if args.image:
        c.image = args.image
    if args.args is not None:
        c.ClearField("args")
        c.args.extend(shlex.split(args.args))
    env = {e.partition("=")[0]: e for e in c.env}
    for key in args.env_rm:
        env.pop(key, None)
    env.update({e.partition("=")[0]: e for e in _check_env(args.env_add)})
    c.ClearField("env")
    c.env.extend(sorted(env.values()))
    for key in args.label_rm:
        s.labels.pop(key, None)
    s.labels.update(_pairs(args.label_add, "--label-add"))
    _replace_list(placement.constraints, args.constraint_rm, args.constraint_add)
    kept = [p for p in placement.preferences if f"spread={p.spread}" not in args.placement_pref_rm]
    placement.ClearField("preferences")
    placement.preferences.extend(kept + [_preference(p) for p in args.placement_pref_add])
    mounts = [m for m in c.mounts if m.target not in args.mount_rm] + [_mount(t) for t in args.mount_add]
    c.ClearField("mounts")
    c.mounts.extend(mounts)
    _edit_networks(s.task, args.network_rm, args.network_add, network_id)
    ports.edit(s.endpoint, args.publish_rm, args.publish_add, allocated)
    dns = c.dns_config
    _replace_list(dns.nameservers, args.dns_rm, _nameservers(args.dns_add))
    _replace_list(dns.search, args.dns_search_rm, _search_domains(args.dns_search_add))
    _replace_list(dns.options, args.dns_option_rm, args.dns_option_add)
    _edit_hosts(c, args.host_rm, args.host_add)
    fileflags.apply_update(args, c)
    if args.force:
        s.task.force_update += 1
    if args.replicas is not None and s.WhichOneof("mode") not in ("replicated", "replicated_job"):
        raise InvalidArgument("--replicas can only be used with replicated modes")
    _apply_shared_flags(args, s)
    return s


def _replace_list(field, remove: list[str], add: list[str]) -> None:
    kept = [item for item in field if item not in remove]
    kept += [a for a in add if a not in kept]
    del field[:]
    field.extend(kept)


# ---------------------------------------------------------------- both

def _apply_shared_flags(args, s: specs.ServiceSpec) -> None:
    for flag in ("replicas", "max_concurrent", "replicas_max_per_node", "restart_max_attempts", "health_retries",
                 "update_parallelism", "rollback_parallelism"):
        if (getattr(args, flag) or 0) < 0:
            raise InvalidArgument(f"--{flag.replace('_', '-')} must be 0 or more")
    _replicas(args, s)
    if args.replicas_max_per_node is not None:
        s.task.placement.max_replicas = args.replicas_max_per_node
    res = s.task.resources
    for flag, target in (("reserve_cpu", res.reservations), ("limit_cpu", res.limits)):
        if getattr(args, flag) is not None:
            target.nano_cpus = int(getattr(args, flag) * 1e9)
    for flag, target in (("reserve_memory", res.reservations), ("limit_memory", res.limits)):
        if getattr(args, flag) is not None:
            target.memory_bytes = parse_bytes(getattr(args, flag))
    if args.hostname is not None:
        s.task.container.hostname = _hostname(args.hostname)
    if args.endpoint_mode:
        s.endpoint.mode = ENDPOINT_MODES[args.endpoint_mode]
    _restart(args, s.task, "on-failure" if s.WhichOneof("mode") in ("replicated_job", "global_job") else "any")
    _healthcheck(args, s.task.container)
    _rollout(args, s)


def _replicas(args, s: specs.ServiceSpec) -> None:
    """--replicas (a replicated job: its completions) and --max-concurrent (replicated jobs only;
    unset, as many as the completions, as Docker)."""
    if s.WhichOneof("mode") != "replicated_job":
        if args.max_concurrent is not None:
            raise InvalidArgument("--max-concurrent can only be used with replicated-job mode")
        if args.replicas is not None:
            s.replicated.replicas = args.replicas
        return
    job = s.replicated_job
    following = job.max_concurrent in (0, job.total_completions)  # the default: all at once
    if args.replicas is not None:
        job.total_completions = args.replicas
    if args.max_concurrent is not None:
        job.max_concurrent = args.max_concurrent
    elif following:
        job.max_concurrent = job.total_completions


def _restart(args, task: specs.TaskSpec, default: str) -> None:
    """`default`: Docker's condition for the mode (any; on-failure for jobs)."""
    given = (args.restart_condition, args.restart_delay, args.restart_max_attempts, args.restart_window)
    if all(flag is None for flag in given):
        return
    restart = task.restart
    if not task.HasField("restart"):
        restart.condition = RESTART[default]  # Docker's default, now written down
    if args.restart_condition:
        restart.condition = RESTART[args.restart_condition]
    if args.restart_delay:
        restart.delay_ns = parse_duration(args.restart_delay)
    if args.restart_max_attempts is not None:
        restart.max_attempts = args.restart_max_attempts
    if args.restart_window:
        restart.window_ns = parse_duration(args.restart_window)


def _rollout(args, s: specs.ServiceSpec) -> None:
    for kind in ("update", "rollback"):
        config = getattr(s, kind)
        def flag(name, kind=kind):
            return getattr(args, f"{kind}_{name}")
        if flag("parallelism") is not None:
            config.parallelism = flag("parallelism")
        if flag("delay"):
            config.delay_ns = parse_duration(flag("delay"))
        if flag("failure_action"):
            config.failure_action = FAILURE_ACTION[flag("failure_action")]
        if flag("monitor"):
            config.monitor_ns = parse_duration(flag("monitor"))
        if flag("max_failure_ratio") is not None:
            if not 0 <= flag("max_failure_ratio") <= 1:
                raise InvalidArgument(f"--{kind}-max-failure-ratio must be between 0 and 1")
            config.max_failure_ratio = flag("max_failure_ratio")
        if flag("order"):
            config.order = ORDER[flag("order")]


def _healthcheck(args, container: specs.ContainerSpec) -> None:
    if args.no_healthcheck:
        if args.health_cmd:
            raise InvalidArgument("--no-healthcheck conflicts with --health-cmd")
        container.healthcheck.ClearField("test")
        container.healthcheck.test.append("NONE")
        return
    h = container.healthcheck
    if args.health_cmd:
        h.ClearField("test")
        h.test.extend(["CMD-SHELL", args.health_cmd])
    for flag in ("interval", "timeout", "start_period"):
        if getattr(args, f"health_{flag}"):
            setattr(h, f"{flag}_ns", parse_duration(getattr(args, f"health_{flag}")))
    if args.health_retries is not None:
        h.retries = args.health_retries


def _attachments(items: list[str]) -> list[specs.NetworkAttachmentConfig]:
    attachments: list[specs.NetworkAttachmentConfig] = []
    for text in items:
        attachment = _attachment(text)
        if any(a.target == attachment.target for a in attachments):
            raise InvalidArgument(f"network {attachment.target!r} is given twice: give its aliases in one --network")
        attachments.append(attachment)
    return attachments


def _attachment(text: str) -> specs.NetworkAttachmentConfig:
    """Docker's --network: NAME, or the long form name=N,alias=A,alias=B,driver-opt=K=V."""
    if "=" not in text:
        if not text:
            raise InvalidArgument("invalid --network '': give a network name")
        return specs.NetworkAttachmentConfig(target=text)
    attachment = specs.NetworkAttachmentConfig()
    for field in text.split(","):
        key, _, value = field.partition("=")
        key = key.strip().lower()
        if key in ("name", "target"):
            attachment.target = value
        elif key == "alias":
            if not value:
                raise InvalidArgument(f"invalid --network {text!r}: an alias cannot be empty")
            attachment.aliases.append(value)
        elif key == "driver-opt":
            opt, _, opt_value = value.partition("=")
            attachment.driver_attachment_opts[opt] = opt_value
        else:
            raise InvalidArgument(f"invalid --network {text!r}: unknown field {key!r} (name, alias, driver-opt)")
    if not attachment.target:
        raise InvalidArgument(f"invalid --network {text!r}: name=NETWORK is required")
    return attachment


def _edit_networks(task: specs.TaskSpec, remove: list[str], add: list[str],
                   network_id: Callable[[str], str]) -> None:
    removed = {network_id(ref) for ref in remove}
    kept = [n for n in task.networks if network_id(n.target) not in removed]
    for attachment in _attachments(add):
        if any(network_id(n.target) == network_id(attachment.target) for n in kept):
            raise InvalidArgument(f"the service is already attached to network {attachment.target}")
        kept.append(attachment)
    del task.networks[:]
    task.networks.extend(kept)


def _ip(text: str, what: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise InvalidArgument(f"invalid {what} {text!r}: not an IP address") from None


def _nameservers(items: list[str]) -> list[str]:
    return [_ip(text, "--dns") for text in items]


def _search_domains(items: list[str]) -> list[str]:
    for domain in items:
        if not domain or any(ch.isspace() for ch in domain):
            raise InvalidArgument(f"invalid --dns-search {domain!r}: a domain name, without spaces")
    return items


def _host_line(text: str) -> str:
    """NAME:IP as Docker stores it: the /etc/hosts line "IP NAME" (an IPv6 IP keeps its colons)."""
    name, sep, ip = text.partition(":")
    if not sep or not name or any(ch.isspace() for ch in name):
        raise InvalidArgument(f"invalid --host {text!r}: use NAME:IP")
    return f"{_ip(ip, f'--host {text!r}: IP')} {name}"


def _edit_hosts(c: specs.ContainerSpec, remove: list[str], add: list[str]) -> None:
    """--host-rm NAME drops every line for NAME; NAME:IP only that one."""
    def removed(line: str) -> bool:
        ip, _, name = line.partition(" ")
        return any(r == name or r == f"{name}:{ip}" for r in remove)
    _replace_list(c.hosts, [line for line in c.hosts if removed(line)], [_host_line(t) for t in add])


def _hostname(template: str) -> str:
    rest = template
    for known in HOSTNAME_FIELDS:
        rest = rest.replace(known, "")
    if "{{" in rest or "}}" in rest:
        raise InvalidArgument(f"invalid --hostname {template!r}: the templates are {', '.join(HOSTNAME_FIELDS)}")
    return template


def _preference(text: str) -> specs.PlacementPreference:
    kind, _, target = text.partition("=")
    if kind != "spread" or not target:
        raise InvalidArgument(f"invalid placement preference {text!r}: use spread=node.labels.KEY")
    return specs.PlacementPreference(spread=target)


def _mount(text: str) -> specs.Mount:
    """Docker's --mount: comma-separated key=value (src/source, dst/destination/target, ...)."""
    mount, kind = specs.Mount(), "volume"
    for field in text.split(","):
        key, sep, value = field.partition("=")
        key = key.strip().lower()
        if key == "type":
            if value not in MOUNT_TYPES:
                raise InvalidArgument(f"invalid --mount {text!r}: type must be bind, volume or tmpfs")
            kind = value
        elif key in ("source", "src"):
            mount.source = value
        elif key in ("target", "destination", "dst"):
            mount.target = value
        elif key in ("readonly", "ro"):
            mount.read_only = value.lower() not in ("0", "false") if sep else True
        elif key == "tmpfs-size":
            mount.tmpfs_options.size_bytes = parse_bytes(value)
        else:
            raise InvalidArgument(f"invalid --mount {text!r}: unknown field {key!r}")
    mount.type = MOUNT_TYPES[kind]
    if not mount.target.startswith("/"):
        raise InvalidArgument(f"invalid --mount {text!r}: target must be an absolute path")
    if kind == "bind" and not mount.source.startswith("/"):
        raise InvalidArgument(f"invalid --mount {text!r}: a bind source must be an absolute path on the host")
    if kind == "tmpfs" and mount.source:
        raise InvalidArgument(f"invalid --mount {text!r}: a tmpfs has no source")
    return mount


def _pairs(items, flag) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not key:
            raise InvalidArgument(f"invalid {flag} {item!r}: use KEY=VALUE")
        out[key] = value
    return out


def _check_env(items):
    for item in items:
        if not item or item.startswith("="):
            raise InvalidArgument(f"invalid environment variable {item!r}: use KEY=VALUE")
    return items
