"""The control API for secrets and configs (`covey secret / config create / ls / inspect / rm`).

A secret's data is stored in the managers' Raft state (sealed at rest: the journal and the
snapshots are encrypted, backups too) and leaves it only for a node that runs a task using
it (manager/dispatcher/secretfeed.py). No answer of this API ever carries it. A config is the
same object without the secrecy: `config inspect` shows its data, as Docker does.

Names are unique per kind. Two concurrent creates of one name each write the cluster object
back with the version they read, so one of them conflicts and is planned again (write_fresh,
as networks do), and then sees the other's.
"""
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from covey.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from covey.ids import new_id
from manager.state import store as st
from manager.state.actions import create, remove, update, write_fresh
from manager.state.queries import cluster_of, find_config, find_secret
from proto import control_pb2, store_pb2
from proto import objects_pb2 as pb
from proto import specs_pb2 as specs

# Docker's rule: letters and digits, with '-', '_' and '.' inside; at most 64 characters.
NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,62}[A-Za-z0-9])?$")
MAX_DATA = 500 * 1024          # bytes, Docker's limit for a secret or a config
CREATE_ATTEMPTS = 10           # concurrent creates each conflict at most once per other create


@dataclass(frozen=True)
class Kind:
    """What differs between secrets and configs."""
    noun: str                                      # "secret" | "config"
    cls: type                                      # pb.Secret | pb.Config
    find: Callable[[st.Store, str], Any]
    references: Callable[[specs.ContainerSpec], list[str]]   # IDs or names a container uses

    def table(self, store: st.Store):
        return store.table(self.cls)


def secret_refs(container: specs.ContainerSpec) -> list[str]:
    return [r.secret_id or r.secret_name for r in container.secrets]


def config_refs(container: specs.ContainerSpec) -> list[str]:
    return [r.config_id or r.config_name for r in container.configs]


SECRET = Kind("secret", pb.Secret, find_secret, secret_refs)
CONFIG = Kind("config", pb.Config, find_config, config_refs)


def validate_spec(kind: Kind, spec: specs.SecretSpec | specs.ConfigSpec) -> None:
    if not NAME.match(spec.name):
        raise InvalidArgument(f"invalid {kind.noun} name {spec.name!r}: 1 to 64 letters, digits, '_.-', "
                              "starting and ending with a letter or digit")
    if isinstance(spec, specs.SecretSpec) and spec.driver.name:
        raise InvalidArgument(f"secret {spec.name}: external secret drivers are not supported")
    if spec.templating.name:
        raise InvalidArgument(f"{kind.noun} {spec.name}: templating is not supported")
    if not spec.data:
        raise InvalidArgument(f"{kind.noun} {spec.name}: data is required (it is empty)")
    if len(spec.data) > MAX_DATA:
        raise InvalidArgument(f"{kind.noun} {spec.name}: data is {len(spec.data)} bytes, "
                              f"more than the limit of {MAX_DATA} bytes (500 KiB)")


def users_of(store: st.Store, kind: Kind, obj) -> list[str]:
    """The names of the services whose spec uses the secret or config (by ID or name)."""
    return sorted(s.spec.name for s in store.services.view()
                  if {obj.id, obj.spec.name} & set(kind.references(s.spec.task.container)))


def without_data(secret: pb.Secret) -> pb.Secret:
    """The secret as the API shows it: everything but its data."""
    shown = pb.Secret()
    shown.CopyFrom(secret)
    shown.spec.data = b""
    return shown


class SecretAPI:
    def __init__(self, store: st.Store):
        self._store = store

    def handlers(self) -> dict:
        return {"CreateSecret": self.create_secret, "ListSecrets": self.list_secrets,
                "GetSecret": self.get_secret, "RemoveSecret": self.remove_secret,
                "CreateConfig": self.create_config, "ListConfigs": self.list_configs,
                "GetConfig": self.get_config, "RemoveConfig": self.remove_config}

    # ------------------------------------------------------------ secrets

    async def create_secret(self, request: control_pb2.CreateSecretRequest) -> control_pb2.CreateSecretResponse:
        secret = await self._create(SECRET, request.spec)
        return control_pb2.CreateSecretResponse(secret=without_data(secret))

    async def list_secrets(self, request: control_pb2.ListSecretsRequest) -> control_pb2.ListSecretsResponse:
        secrets = sorted(self._store.secrets.list(), key=lambda s: s.spec.name)
        return control_pb2.ListSecretsResponse(secrets=[without_data(s) for s in secrets])

    async def get_secret(self, request: control_pb2.GetSecretRequest) -> control_pb2.GetSecretResponse:
        return control_pb2.GetSecretResponse(secret=without_data(find_secret(self._store, request.secret)))

    async def remove_secret(self, request: control_pb2.RemoveSecretRequest) -> control_pb2.RemoveSecretResponse:
        await self._remove(SECRET, request.secret)
        return control_pb2.RemoveSecretResponse()

    # ------------------------------------------------------------ configs

    async def create_config(self, request: control_pb2.CreateConfigRequest) -> control_pb2.CreateConfigResponse:
        return control_pb2.CreateConfigResponse(config=await self._create(CONFIG, request.spec))

    async def list_configs(self, request: control_pb2.ListConfigsRequest) -> control_pb2.ListConfigsResponse:
        configs: list[pb.Config] = sorted(self._store.configs.list(), key=lambda c: c.spec.name)
        return control_pb2.ListConfigsResponse(configs=configs)

    async def get_config(self, request: control_pb2.GetConfigRequest) -> control_pb2.GetConfigResponse:
        return control_pb2.GetConfigResponse(config=find_config(self._store, request.config))

    async def remove_config(self, request: control_pb2.RemoveConfigRequest) -> control_pb2.RemoveConfigResponse:
        await self._remove(CONFIG, request.config)
        return control_pb2.RemoveConfigResponse()

    # ------------------------------------------------------------ both

    async def _create(self, kind: Kind, request_spec):
        spec = type(request_spec)()
        spec.CopyFrom(request_spec)
        validate_spec(kind, spec)
        obj_id = new_id()
        created: list = []

        def plan() -> list[store_pb2.StoreAction]:
            if any(o.spec.name == spec.name for o in kind.table(self._store).view()):
                raise AlreadyExists(f"a {kind.noun} named {spec.name} already exists")
            now = time.time_ns()
            created[:] = [kind.cls(id=obj_id, meta=pb.Meta(created_at_ns=now, updated_at_ns=now),
                                   spec=spec, version=1)]
            cluster = cluster_of(self._store)  # written back unchanged: its version guards the name
            cluster.meta.updated_at_ns = now
            return [create(created[0]), update(cluster)]

        await write_fresh(self._store, plan, CREATE_ATTEMPTS, f"creating {kind.noun} {spec.name}")
        obj = created[0]
        obj.meta.version = 1
        return obj

    async def _remove(self, kind: Kind, ref: str) -> None:
        obj = kind.find(self._store, ref)
        services = users_of(self._store, kind, obj)
        if services:
            raise FailedPrecondition(f"{kind.noun} {obj.spec.name} is in use by the following "
                                     f"service(s): {', '.join(services)}")
        await remove(self._store, kind.cls, obj.id)


DEFAULT_MODE = 0o444           # Docker's, for a secret or a config file


def resolve_references(store: st.Store, service_spec: specs.ServiceSpec) -> None:
    """Each secret and config a service's container uses, given by name, ID or unique ID prefix,
    is stored with both its ID and name (the nodes get it by ID) and its file's defaults
    (target the name, uid and gid 0, mode 0444, as Docker); NotFound names an unknown one."""
    container = service_spec.task.container
    for secret_ref in container.secrets:
        secret = find_secret(store, secret_ref.secret_id or secret_ref.secret_name)
        secret_ref.secret_id, secret_ref.secret_name = secret.id, secret.spec.name
    for config_ref in container.configs:
        config = find_config(store, config_ref.config_id or config_ref.config_name)
        config_ref.config_id, config_ref.config_name = config.id, config.spec.name
    fill_files(service_spec)


def fill_files(service_spec: specs.ServiceSpec) -> None:
    """The file defaults of a service's resolved secrets and configs, checked: no two of them
    at one target."""
    container, service = service_spec.task.container, service_spec.name
    targets: set[str] = set()
    for secret_ref in container.secrets:
        _fill_file(secret_ref.file, secret_ref.secret_name, "/run/secrets/", service, targets)
    for config_ref in container.configs:
        _fill_file(config_ref.file, config_ref.config_name, "/", service, targets)


def _fill_file(file: specs.FileTarget, name: str, base: str, service: str, targets: set[str]) -> None:
    file.name = file.name or name
    for owner in ("uid", "gid"):
        value = getattr(file, owner) or "0"
        if not value.isdigit():
            raise InvalidArgument(f"service {service}: {name}: invalid {owner} {value!r}: give a number")
        setattr(file, owner, value)
    file.mode = file.mode or DEFAULT_MODE
    if file.mode > 0o7777:
        raise InvalidArgument(f"service {service}: {name}: invalid mode {file.mode:o}")
    path = file_path(file.name, base)
    if ".." in path.split("/") or path.endswith("/"):
        raise InvalidArgument(f"service {service}: {name}: invalid target {file.name!r}")
    if path in targets:
        raise InvalidArgument(f"service {service}: two secrets or configs have the target {path}")
    targets.add(path)


def file_path(target: str, base: str) -> str:
    """Where a secret's (base /run/secrets/) or a config's (base /) file is in the container."""
    return target if target.startswith("/") else base + target
