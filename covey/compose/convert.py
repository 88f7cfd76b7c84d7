"""A normalized compose model as a StackSpec: services in creation order, and the
networks, volumes, secrets and configs the stack owns or expects to exist."""
from covey.compose.errors import ComposeError
from covey.compose.service import NAMESPACE_LABEL, Names, convert_service
from proto import specs_pb2 as specs

_CONDITION = {"service_started": specs.ServiceDependency.STARTED,
              "service_healthy": specs.ServiceDependency.HEALTHY,
              "service_completed_successfully": specs.ServiceDependency.COMPLETED_SUCCESSFULLY}


def convert(model: dict, stack: str, ctx, read_files: bool = True) -> specs.StackSpec:
    """`ctx` (normalize.Context) gives errors their file and line, and the variables."""
    names = Names(stack, model)
    out = specs.StackSpec(name=stack)
    out.labels[NAMESPACE_LABEL] = stack
    try:
        for service in creation_order(model["services"]):
            out.services.append(convert_service(service, model["services"][service], names))
        _dependencies(out, model, names)
        _networks(out, model, names)
        _volumes(out, model, names)
        _secrets(out, model, names, ctx, read_files)
    except ComposeError as exc:
        if exc.file:
            raise
        raise ctx.error(exc.message, exc.path) from None
    return out


def creation_order(services: dict) -> list[str]:
    """Services sorted so that each comes after what it depends on (then by name)."""
    order: list[str] = []
    state: dict[str, str] = {}  # service -> "visiting" | "done"

    def visit(name, chain):
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            cycle = chain[chain.index(name):] + [name]
            raise ComposeError("dependency cycle: " + " -> ".join(cycle),
                               path=("services", name, "depends_on"))
        state[name] = "visiting"
        for dep in sorted((services[name] or {}).get("depends_on") or {}):
            if dep in services:
                visit(dep, chain + [name])
        state[name] = "done"
        order.append(name)

    for name in sorted(services):
        visit(name, [])
    return order


def _dependencies(out, model, names: Names):
    for name in creation_order(model["services"]):
        for dep, options in sorted((model["services"][name].get("depends_on") or {}).items()):
            if dep not in model["services"]:
                continue                         # an optional dependency (required: false)
            condition = options.get("condition") or "service_started"
            if condition not in _CONDITION:
                raise ComposeError(f"unknown condition {condition!r}",
                                   path=("services", name, "depends_on", dep, "condition"))
            out.dependencies.add(service=names.scoped(name), depends_on=names.scoped(dep),
                                 condition=_CONDITION[condition],
                                 required=options.get("required", True) is not False)


def _used_networks(model) -> set[str]:
    used: set[str] = set()
    for spec in model["services"].values():
        used.update(spec.get("networks") or {"default": {}})
    return used


def _networks(out, model, names: Names):
    declared = model.get("networks") or {}
    for name in sorted(_used_networks(model) | set(declared)):
        spec = declared.get(name) or {}
        if spec.get("external"):
            out.external_networks.append(names.of("networks", name))
            continue
        net = out.networks.add(name=names.of("networks", name),
                               internal=bool(spec.get("internal")),
                               attachable=bool(spec.get("attachable")),
                               ipv6_enabled=bool(spec.get("enable_ipv6")))
        net.labels.update({**_strs(spec.get("labels")), NAMESPACE_LABEL: names.stack})
        net.driver_config.name = str(spec.get("driver") or "overlay")
        net.driver_config.options.update(_strs(spec.get("driver_opts")))
        _ipam(net.ipam, spec.get("ipam") or {}, ("networks", name, "ipam"))


def _ipam(ipam, spec: dict, path):
    if spec.get("driver"):
        ipam.driver.name = str(spec["driver"])
    ipam.driver.options.update(_strs(spec.get("options")))
    for i, pool in enumerate(spec.get("config") or []):
        if not isinstance(pool, dict):
            raise ComposeError("an IPAM pool must be a mapping", path=path + ("config", i))
        ipam.configs.add(subnet=str(pool.get("subnet") or ""), range=str(pool.get("ip_range") or ""),
                         gateway=str(pool.get("gateway") or ""),
                         reserved=_strs(pool.get("aux_addresses")))


def _volumes(out, model, names: Names):
    for name, spec in sorted((model.get("volumes") or {}).items()):
        if spec.get("external"):
            out.external_volumes.append(names.of("volumes", name))
            continue
        vol = out.volumes.add(name=names.of("volumes", name))
        vol.labels.update({**_strs(spec.get("labels")), NAMESPACE_LABEL: names.stack})
        vol.driver_config.name = str(spec.get("driver") or "local")
        vol.driver_config.options.update(_strs(spec.get("driver_opts")))


def _secrets(out, model, names: Names, ctx, read_files: bool):
    for kind in ("secrets", "configs"):
        for name, spec in sorted((model.get(kind) or {}).items()):
            if spec.get("external"):
                getattr(out, "external_" + kind).append(names.of(kind, name))
                continue
            item = (out.secrets if kind == "secrets" else out.configs).add(name=names.of(kind, name))
            item.labels.update({**_strs(spec.get("labels")), NAMESPACE_LABEL: names.stack})
            if spec.get("template_driver"):
                item.templating.name = str(spec["template_driver"])
            if kind == "secrets" and spec.get("driver"):
                item.driver.name = str(spec["driver"])
                item.driver.options.update(_strs(spec.get("driver_opts")))
            if read_files:
                item.data = _contents(kind, name, spec, ctx)


def _contents(kind: str, name: str, spec: dict, ctx) -> bytes:
    """The data of a secret or config: its file, environment variable or inline content."""
    if spec.get("file"):
        try:
            with open(spec["file"], "rb") as f:
                return f.read()
        except OSError as exc:
            raise ComposeError(f"cannot read {kind[:-1]} {name!r} from {spec['file']}: "
                               f"{exc.strerror or exc}", path=(kind, name, "file")) from None
    if spec.get("environment"):
        return str(ctx.env.get(str(spec["environment"]), "")).encode()
    if spec.get("content") is not None:
        return str(spec["content"]).encode()
    if kind == "secrets" and spec.get("driver"):
        return b""                              # the driver holds the data
    raise ComposeError(f"{kind[:-1]} {name!r} needs one of file, environment"
                       f"{', content' if kind == 'configs' else ''} or external: true",
                       path=(kind, name))


def _strs(mapping) -> dict:
    return {str(k): "" if v is None else str(v) for k, v in (mapping or {}).items()}

