"""What a swarm can carry of a compose file, and a warning for everything else.

The converter reads exactly the keys listed as supported here; every other key gets
one warning naming it, so that nothing is dropped silently. `--strict` makes them errors.
"""
SERVICE_KEYS = {
    "image", "command", "entrypoint", "environment", "labels", "deploy", "ports", "networks",
    "volumes", "secrets", "configs", "healthcheck", "hostname", "user", "working_dir",
    "stop_grace_period", "stop_signal", "read_only", "init", "cap_add", "cap_drop", "sysctls",
    "ulimits", "logging", "dns", "dns_search", "dns_opt", "extra_hosts", "tmpfs", "tty",
    "stdin_open", "domainname", "isolation", "group_add", "depends_on", "restart", "pids_limit",
    "platform", "scale",
}
# Why some common keys cannot work on a swarm, for a more useful warning.
_REASONS = {
    "build": "a swarm deploys images; build and push them first",
    "container_name": "a swarm names each task's container itself",
    "links": "services on a shared network already reach each other by name",
    "external_links": "services on a shared network already reach each other by name",
    "network_mode": "swarm services attach to networks instead",
    "expose": "services on a network reach each other's ports without it",
    "privileged": "swarm services cannot run privileged containers",
    "devices": "swarm services cannot map host devices",
    "security_opt": "swarm services take no security options",
    "volumes_from": "swarm services cannot share another container's volumes",
    "cpus": "use deploy.resources.limits.cpus",
    "mem_limit": "use deploy.resources.limits.memory",
    "mem_reservation": "use deploy.resources.reservations.memory",
    "shm_size": "mount a tmpfs at /dev/shm instead",
}
DEPLOY_KEYS = {"mode", "replicas", "labels", "update_config", "rollback_config", "resources",
               "restart_policy", "placement", "endpoint_mode"}
RESOURCE_KEYS = {"cpus", "memory", "pids", "generic_resources"}
TOP_KEYS = {"version", "name", "services", "networks", "volumes", "secrets", "configs"}
RESOURCE_SECTIONS = {
    "networks": {"name", "driver", "driver_opts", "ipam", "external", "internal", "attachable",
                 "labels", "enable_ipv6"},
    "volumes": {"name", "driver", "driver_opts", "external", "labels"},
    "secrets": {"name", "file", "environment", "external", "labels", "driver", "driver_opts",
                "template_driver"},
    "configs": {"name", "file", "environment", "content", "external", "labels", "template_driver"},
}


def _extension(key) -> bool:
    return str(key).startswith("x-")


def swarm_warnings(model: dict) -> list[str]:
    """One warning per key, in every service and section, that a swarm cannot carry."""
    warnings = [f"top-level key {k!r} is not supported by stacks and is ignored"
                for k in model if k not in TOP_KEYS and not _extension(k)]
    for section, allowed in RESOURCE_SECTIONS.items():
        for name, spec in (model.get(section) or {}).items():
            warnings += [f"{section}.{name}: key {k!r} is not supported on a swarm and is ignored"
                         for k in spec or {} if k not in allowed and not _extension(k)]
    for name, spec in (model.get("services") or {}).items():
        warnings += _service_warnings(name, spec or {})
    return warnings


def _service_warnings(name: str, spec: dict) -> list[str]:
    out = []
    for key in spec:
        if key in SERVICE_KEYS or _extension(key):
            continue
        reason = _REASONS.get(key, "a swarm service cannot carry it")
        out.append(f"service {name!r}: key {key!r} is ignored on a swarm: {reason}")
    deploy = spec.get("deploy") or {}
    if "restart" in spec and "restart_policy" in deploy:
        out.append(f"service {name!r}: key 'restart' is ignored on a swarm: "
                   f"deploy.restart_policy takes precedence")
    if "scale" in spec and "replicas" in deploy:
        out.append(f"service {name!r}: key 'scale' is ignored on a swarm: deploy.replicas "
                   f"takes precedence")
    out += [f"service {name!r}: key 'deploy.{k}' is not supported on a swarm and is ignored"
            for k in deploy if k not in DEPLOY_KEYS and not _extension(k)]
    for kind in ("limits", "reservations"):
        section = (deploy.get("resources") or {}).get(kind) or {}
        out += [f"service {name!r}: key 'deploy.resources.{kind}.{k}' is not supported on a "
                f"swarm and is ignored" for k in section
                if k not in RESOURCE_KEYS and not _extension(k)]
    for i, port in enumerate(spec.get("ports") or []):
        if port.get("host_ip"):
            out.append(f"service {name!r}: ports.{i}: the host IP {port['host_ip']} is ignored: "
                       f"a swarm publishes on every address")
    return out
