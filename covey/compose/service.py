"""One compose service as a ServiceSpec (the keys compat.SERVICE_KEYS lists)."""
from covey.compose import values as v
from covey.compose.errors import ComposeError
from proto import specs_pb2 as specs

NAMESPACE_LABEL = "com.docker.stack.namespace"
IMAGE_LABEL = "com.docker.stack.image"

_RESTART = {"none": specs.RestartPolicy.NONE, "on-failure": specs.RestartPolicy.ON_FAILURE,
            "any": specs.RestartPolicy.ANY, "": specs.RestartPolicy.ANY}
_FAILURE = {"pause": specs.UpdateConfig.PAUSE, "continue": specs.UpdateConfig.CONTINUE,
            "rollback": specs.UpdateConfig.ROLLBACK, "": specs.UpdateConfig.PAUSE}
_ORDER = {"stop-first": specs.UpdateConfig.STOP_FIRST, "start-first": specs.UpdateConfig.START_FIRST,
          "": specs.UpdateConfig.STOP_FIRST}
_PROTOCOL = {"tcp": specs.PortConfig.TCP, "udp": specs.PortConfig.UDP, "sctp": specs.PortConfig.SCTP}
_PUBLISH = {"ingress": specs.PortConfig.INGRESS, "host": specs.PortConfig.HOST, "": specs.PortConfig.INGRESS}
_ENDPOINT = {"vip": specs.EndpointSpec.VIP, "dnsrr": specs.EndpointSpec.DNSRR, "": specs.EndpointSpec.VIP}
_MOUNT = {"bind": specs.Mount.BIND, "volume": specs.Mount.VOLUME, "tmpfs": specs.Mount.TMPFS,
          "npipe": specs.Mount.NPIPE, "cluster": specs.Mount.CLUSTER}


class Names:
    """The swarm names of a stack's objects: `<stack>_<name>` unless `name:` says otherwise."""
    def __init__(self, stack: str, model: dict):
        self.stack = stack
        self.model = model

    def scoped(self, name: str) -> str:
        return f"{self.stack}_{name}"

    def of(self, kind: str, name: str) -> str:
        spec = (self.model.get(kind) or {}).get(name) or {}
        if spec.get("name"):
            return str(spec["name"])
        return name if spec.get("external") else self.scoped(name)


def convert_service(name: str, spec: dict, names: Names) -> specs.ServiceSpec:
    path = ("services", name)
    deploy = spec.get("deploy") or {}
    labels = {**(deploy.get("labels") or {}), NAMESPACE_LABEL: names.stack}
    out = specs.ServiceSpec(name=names.scoped(name), labels=_labels(labels))
    if spec.get("image"):
        out.labels[IMAGE_LABEL] = str(spec["image"])
    _container(out.task.container, name, spec, names, path)
    _mode(out, spec, deploy, path + ("deploy",))
    _task(out.task, spec, deploy, path)
    for key, field in (("update_config", out.update), ("rollback_config", out.rollback)):
        if deploy.get(key) is not None:
            _update(field, deploy[key], path + ("deploy", key))
    _endpoint(out.endpoint, spec, deploy, path)
    _networks(out.task, name, spec, names, path)
    return out


def _labels(mapping: dict) -> dict:
    return {str(k): "" if val is None else str(val) for k, val in mapping.items()}


def _container(c, name, spec, names, path):
    c.image = str(spec.get("image") or "")
    c.labels.update(_labels({**(spec.get("labels") or {}), NAMESPACE_LABEL: names.stack}))
    c.command.extend(v.string_list(spec.get("entrypoint")))   # Docker's swap, see specs.proto
    c.args.extend(v.string_list(spec.get("command")))
    for key, field in (("hostname", "hostname"), ("working_dir", "dir"), ("user", "user"),
                       ("stop_signal", "stop_signal"), ("isolation", "isolation"),
                       ("domainname", "domainname")):
        if spec.get(key) is not None:
            setattr(c, field, str(spec[key]))
    env = spec.get("environment") or {}
    c.env.extend(k if env[k] is None else f"{k}={env[k]}" for k in sorted(env))
    c.groups.extend(v.string_list(spec.get("group_add")))
    for key, field in (("tty", "tty"), ("stdin_open", "open_stdin"), ("read_only", "read_only")):
        if spec.get(key) is not None:
            setattr(c, field, v.boolean(spec[key], path + (key,)))
    if spec.get("init") is not None:
        c.init = v.boolean(spec["init"], path + ("init",))
    if spec.get("stop_grace_period") is not None:
        c.stop_grace_period_ns = v.duration(spec["stop_grace_period"], path + ("stop_grace_period",))
    c.capability_add.extend(v.string_list(spec.get("cap_add")))
    c.capability_drop.extend(v.string_list(spec.get("cap_drop")))
    c.sysctls.update(_labels(spec.get("sysctls") or {}))
    c.hosts.extend(f"{ip} {host}" for host, ip in (spec.get("extra_hosts") or {}).items())
    _dns(c, spec)
    _ulimits(c, spec.get("ulimits") or {}, path + ("ulimits",))
    _mounts(c, spec, names, path)
    _references(c, spec, names, path)
    if spec.get("healthcheck") is not None:
        _healthcheck(c.healthcheck, spec["healthcheck"], path + ("healthcheck",))


def _dns(c, spec):
    for key, field in (("dns", "nameservers"), ("dns_search", "search"), ("dns_opt", "options")):
        getattr(c.dns_config, field).extend(v.string_list(spec.get(key)))


def _ulimits(c, ulimits: dict, path):
    for name in sorted(ulimits):
        value = ulimits[name]
        if isinstance(value, dict):
            soft = v.integer(value.get("soft"), path + (name, "soft"), None)
            hard = v.integer(value.get("hard"), path + (name, "hard"), None)
        else:
            soft = hard = v.integer(value, path + (name,), None)
        c.ulimits.add(name=str(name), soft=soft, hard=hard)


def _mounts(c, spec, names, path):
    for i, vol in enumerate(spec.get("volumes") or []):
        _mount(c.mounts.add(), vol, names, path + ("volumes", i))
    for target in v.string_list(spec.get("tmpfs")):
        c.mounts.add(type=specs.Mount.TMPFS, target=target)


def _mount(m, vol: dict, names: Names, path):
    m.type = v.choice(vol.get("type"), _MOUNT, path + ("type",))
    m.target = str(vol["target"])
    m.read_only = v.boolean(vol.get("read_only", False), path + ("read_only",))
    m.consistency = str(vol.get("consistency") or "")
    bind, volume, tmpfs = vol.get("bind") or {}, vol.get("volume") or {}, vol.get("tmpfs") or {}
    if m.type == specs.Mount.BIND:
        m.source = str(vol["source"])
        m.bind_options.propagation = str(bind.get("propagation") or "")
        m.bind_options.create_mountpoint = bool(bind.get("create_host_path", False))
    elif m.type == specs.Mount.VOLUME:
        _volume_mount(m, vol, volume, names, path)
    elif m.type == specs.Mount.TMPFS:
        if tmpfs.get("size") is not None:
            m.tmpfs_options.size_bytes = v.size(tmpfs["size"], path + ("tmpfs", "size"))
        if tmpfs.get("mode") is not None:
            m.tmpfs_options.mode = v.integer(tmpfs["mode"], path + ("tmpfs", "mode"))
    else:
        m.source = str(vol.get("source") or "")


def _volume_mount(m, vol, volume, names: Names, path):
    m.volume_options.no_copy = v.boolean(volume.get("nocopy", False), path + ("volume", "nocopy"))
    m.volume_options.subpath = str(volume.get("subpath") or "")
    if not vol.get("source"):
        return                                  # anonymous: a fresh volume per task
    source = str(vol["source"])
    m.source = names.of("volumes", source)
    top = (names.model.get("volumes") or {}).get(source) or {}
    if top.get("external"):
        return
    m.volume_options.labels.update(_labels({**(top.get("labels") or {}),
                                            NAMESPACE_LABEL: names.stack}))
    if top.get("driver") or top.get("driver_opts"):
        m.volume_options.driver_config.name = str(top.get("driver") or "local")
        m.volume_options.driver_config.options.update(_labels(top.get("driver_opts") or {}))


def _references(c, spec, names: Names, path):
    for kind in ("secrets", "configs"):
        for i, ref in enumerate(spec.get(kind) or []):
            sub = path + (kind, i)
            source = str(ref["source"])
            target = str(ref.get("target") or (source if kind == "secrets" else "/" + source))
            entry = c.secrets.add(secret_name=names.of(kind, source)) if kind == "secrets" \
                else c.configs.add(config_name=names.of(kind, source))
            entry.file.name = target
            entry.file.uid = str(ref.get("uid") or "0")
            entry.file.gid = str(ref.get("gid") or "0")
            mode = ref.get("mode")
            entry.file.mode = 0o444 if mode is None else v.integer(mode, sub + ("mode",))


def _healthcheck(h, hc: dict, path):
    if hc.get("disable"):
        h.test.append("NONE")
        return
    h.test.extend(v.string_list(hc.get("test")))
    for key in ("interval", "timeout", "start_period", "start_interval"):
        if hc.get(key) is not None:
            setattr(h, key + "_ns", v.duration(hc[key], path + (key,)))
    if hc.get("retries") is not None:
        h.retries = v.integer(hc["retries"], path + ("retries",))


def _mode(out, spec, deploy, path):
    mode = str(deploy.get("mode") or "replicated")
    replicas = deploy.get("replicas", spec.get("scale"))
    count = 1 if replicas is None else v.integer(replicas, path + ("replicas",))
    if mode == "replicated":
        out.replicated.replicas = count
    elif mode == "global":
        out.__getattribute__("global").SetInParent()
        if replicas is not None:
            raise ComposeError("replicas cannot be set for a global service", path=path + ("replicas",))
    elif mode == "replicated-job":
        out.replicated_job.max_concurrent = count
        out.replicated_job.total_completions = count
    elif mode == "global-job":
        out.global_job.SetInParent()
    else:
        raise ComposeError(f"unknown mode {mode!r}: use replicated, global, replicated-job or "
                           f"global-job", path=path + ("mode",))


def _task(t, spec, deploy, path):
    res = deploy.get("resources") or {}
    for kind in ("limits", "reservations"):
        if res.get(kind):
            _resources(getattr(t.resources, kind), res[kind], path + ("deploy", "resources", kind))
    if spec.get("pids_limit") is not None and not t.resources.limits.pids:
        t.resources.limits.pids = v.integer(spec["pids_limit"], path + ("pids_limit",), None)
    if deploy.get("restart_policy") is not None:
        _restart_policy(t.restart, deploy["restart_policy"], path + ("deploy", "restart_policy"))
    elif spec.get("restart") is not None:
        _restart(t.restart, str(spec["restart"]), path + ("restart",))
    _placement(t.placement, deploy.get("placement") or {}, spec, path)
    logging = spec.get("logging") or {}
    if logging.get("driver") or logging.get("options"):
        t.log_driver.name = str(logging.get("driver") or "")
        t.log_driver.options.update(_labels(logging.get("options") or {}))


def _resources(r, spec: dict, path):
    if spec.get("cpus") is not None:
        r.nano_cpus = int(round(v.number(spec["cpus"], path + ("cpus",)) * 1e9))
    if spec.get("memory") is not None:
        r.memory_bytes = v.size(spec["memory"], path + ("memory",))
    if spec.get("pids") is not None:
        r.pids = v.integer(spec["pids"], path + ("pids",), None)
    for i, item in enumerate(spec.get("generic_resources") or []):
        sub = path + ("generic_resources", i)
        if item.get("discrete_resource_spec"):
            d = item["discrete_resource_spec"]
            r.generic.add(kind=str(d.get("kind") or ""),
                          discrete=v.integer(d.get("value"), sub + ("discrete_resource_spec", "value")))
        elif item.get("named_resource_spec"):
            n = item["named_resource_spec"]
            r.generic.add(kind=str(n.get("kind") or ""), named=str(n.get("value") or ""))


def _restart_policy(r, spec: dict, path):
    r.condition = v.choice(spec.get("condition") or "", _RESTART, path + ("condition",))
    if spec.get("delay") is not None:
        r.delay_ns = v.duration(spec["delay"], path + ("delay",))
    if spec.get("max_attempts") is not None:
        r.max_attempts = v.integer(spec["max_attempts"], path + ("max_attempts",))
    if spec.get("window") is not None:
        r.window_ns = v.duration(spec["window"], path + ("window",))


def _restart(r, text: str, path):
    """Compose's `restart` as a swarm restart policy (used when deploy has none)."""
    policy, _, count = text.partition(":")
    if policy == "no":
        r.condition = specs.RestartPolicy.NONE
    elif policy in ("always", "unless-stopped"):
        r.condition = specs.RestartPolicy.ANY
    elif policy == "on-failure":
        r.condition = specs.RestartPolicy.ON_FAILURE
        if count:
            r.max_attempts = v.integer(count, path)
    else:
        raise ComposeError(f"invalid restart policy {text!r}: use no, always, on-failure[:N] "
                           f"or unless-stopped", path=path)


def _placement(p, spec: dict, service: dict, path):
    sub = path + ("deploy", "placement")
    p.constraints.extend(v.string_list(spec.get("constraints")))
    for i, pref in enumerate(spec.get("preferences") or []):
        if not isinstance(pref, dict) or "spread" not in pref:
            raise ComposeError("a placement preference must be {spread: <label>}",
                               path=sub + ("preferences", i))
        p.preferences.add(spread=str(pref["spread"]))
    if spec.get("max_replicas_per_node") is not None:
        p.max_replicas = v.integer(spec["max_replicas_per_node"], sub + ("max_replicas_per_node",))
    if service.get("platform"):
        os_, _, arch = str(service["platform"]).partition("/")
        p.platforms.add(os=os_, architecture=arch.split("/")[0])


def _update(u, spec: dict, path):
    u.parallelism = v.integer(spec.get("parallelism", 1), path + ("parallelism",))
    if spec.get("delay") is not None:
        u.delay_ns = v.duration(spec["delay"], path + ("delay",))
    u.failure_action = v.choice(spec.get("failure_action") or "", _FAILURE, path + ("failure_action",))
    if spec.get("monitor") is not None:
        u.monitor_ns = v.duration(spec["monitor"], path + ("monitor",))
    if spec.get("max_failure_ratio") is not None:
        u.max_failure_ratio = v.number(spec["max_failure_ratio"], path + ("max_failure_ratio",))
    u.order = v.choice(spec.get("order") or "", _ORDER, path + ("order",))


def _endpoint(e, spec, deploy, path):
    e.mode = v.choice(deploy.get("endpoint_mode") or "", _ENDPOINT, path + ("deploy", "endpoint_mode"))
    for i, port in enumerate(spec.get("ports") or []):
        sub = path + ("ports", i)
        e.ports.add(name=str(port.get("name") or ""),
                    protocol=v.choice(port["protocol"], _PROTOCOL, sub + ("protocol",)),
                    target_port=port["target"], published_port=port.get("published") or 0,
                    publish_mode=v.choice(port.get("mode") or "", _PUBLISH, sub + ("mode",)))
    if e.mode == specs.EndpointSpec.DNSRR and any(p.publish_mode == specs.PortConfig.INGRESS
                                               for p in e.ports):
        raise ComposeError("endpoint_mode dnsrr cannot publish ports through the ingress: "
                           "use mode: host", path=path + ("deploy", "endpoint_mode"))


def _networks(t, name, spec, names: Names, path):
    networks = spec.get("networks")
    if networks is None:
        networks = {"default": {}}
    for net in sorted(networks):
        options = networks[net] or {}
        attach = t.networks.add(target=names.of("networks", net))
        attach.aliases.extend(v.string_list(options.get("aliases")) + [name])
        for key in ("ipv4_address", "ipv6_address"):
            if options.get(key):
                attach.addresses.append(str(options[key]))
        attach.driver_attachment_opts.update(_labels(options.get("driver_opts") or {}))
