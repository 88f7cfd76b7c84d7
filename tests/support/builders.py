"""Builders of the objects tests make, shared by unit, integration and e2e tests and the
benchmarks: a service spec, a service, a task, a node. Durations in seconds, enums by name;
every default is what the most tests want, so a call names only what matters to its test."""
from proto import objects_pb2 as pb
from proto import specs_pb2 as specs

SECOND = 10**9
IMAGE = "registry.local/app:v1"


def service_spec(name: str = "web", image: str = IMAGE, *, replicas: int | None = 1,
                 env: dict | None = None, constraints=(), spread=(), max_per_node: int = 0,
                 cpus: float = 0, memory: int = 0, restart: dict | None = None,
                 update: dict | None = None, rollback: dict | None = None) -> specs.ServiceSpec:
    """replicas=None makes it global. `restart`: condition (NONE, ON_FAILURE, ANY), delay,
    max_attempts, window; `update`/`rollback`: UpdateConfig fields (see _update_config)."""
    s = specs.ServiceSpec(name=name)
    s.task.container.image = image
    s.task.container.env.extend(f"{k}={v}" for k, v in sorted((env or {}).items()))
    if replicas is None:
        getattr(s, "global").SetInParent()  # `global` is a Python keyword
    else:
        s.replicated.replicas = replicas
    # Only what is asked for: an empty but present message would make specs differ.
    if constraints or spread or max_per_node:
        p = s.task.placement
        p.constraints.extend(constraints)
        p.preferences.extend(specs.PlacementPreference(spread=f"node.labels.{label}") for label in spread)
        p.max_replicas = max_per_node
    if cpus or memory:
        s.task.resources.reservations.nano_cpus = int(cpus * SECOND)
        s.task.resources.reservations.memory_bytes = memory
    if restart is not None:
        _restart_policy(s.task.restart, restart)
    for field_name, config in (("update", update), ("rollback", rollback)):
        if config is not None:
            _update_config(getattr(s, field_name), config)
    return s


def _restart_policy(r: specs.RestartPolicy, restart: dict) -> None:
    r.condition = specs.RestartPolicy.Condition.Value(restart.get("condition", "ANY"))
    if "delay" in restart:
        r.delay_ns = int(restart["delay"] * SECOND)
    r.max_attempts = restart.get("max_attempts", 0)
    r.window_ns = int(restart.get("window", 0) * SECOND)


def _update_config(u: specs.UpdateConfig, config: dict) -> None:
    u.parallelism = config.get("parallelism", 1)
    u.delay_ns = int(config.get("delay", 0) * SECOND)
    u.failure_action = specs.UpdateConfig.FailureAction.Value(config.get("failure_action", "PAUSE"))
    if "monitor" in config:
        u.monitor_ns = int(config["monitor"] * SECOND)
    u.max_failure_ratio = config.get("max_failure_ratio", 0.0)
    u.order = specs.UpdateConfig.Order.Value(config.get("order", "STOP_FIRST"))


def with_image(s: specs.ServiceSpec, image: str, **env) -> specs.ServiceSpec:
    """A copy of the spec on another image (and, given any, other environment variables)."""
    changed = specs.ServiceSpec()
    changed.CopyFrom(s)
    changed.task.container.image = image
    if env:
        del changed.task.container.env[:]
        changed.task.container.env.extend(f"{k}={v}" for k, v in sorted(env.items()))
    return changed


def service(sid: str = "s1", *, name: str | None = None, version: int = 1, **spec) -> pb.Service:
    """A stored service `sid` (named svc-<sid> unless named); `spec`: service_spec's arguments."""
    return pb.Service(id=sid, spec_version=version, spec=service_spec(name or f"svc-{sid}", **spec))


def task(tid: str, slot: int = 0, *, service_id: str = "s1", service_name: str = "", node_id: str = "",
         desired: int = pb.RUNNING, state: int = pb.RUNNING, version: int = 1, created: int = 0,
         at: int | None = None, image: str = "") -> pb.Task:
    """A stored task; `created` and `at` (its status time, `created` unless given) in ns."""
    t = pb.Task(id=tid, service_id=service_id, service_name=service_name, slot=slot, node_id=node_id,
                desired_state=desired, spec_version=version,
                status=pb.TaskStatus(state=state, timestamp_ns=created if at is None else at),
                meta=pb.Meta(created_at_ns=created, version=1))
    if image:
        t.spec.container.image = image
    return t


def node(nid: str, *, hostname: str = "", state: int = pb.NodeStatus.READY, availability: int = pb.ACTIVE,
         role: int = pb.WORKER, labels: dict | None = None, engine: dict | None = None, os: str = "",
         arch: str = "", cpus: float = 0, memory: int = 0) -> pb.Node:
    """A stored node; `cpus` and `memory` (bytes) are what it describes as its resources."""
    n = pb.Node(id=nid, role=role, status=pb.NodeStatus(state=state),
                spec=pb.NodeSpec(availability=availability, labels=labels or {}))
    d = n.description
    d.hostname = hostname
    d.platform.os, d.platform.architecture = os, arch
    d.resources.nano_cpus, d.resources.memory_bytes = int(cpus * SECOND), memory
    d.engine_labels.update(engine or {})
    return n
