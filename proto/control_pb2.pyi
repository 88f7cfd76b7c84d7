from proto import backup_pb2 as _backup_pb2
from proto import objects_pb2 as _objects_pb2
from proto import specs_pb2 as _specs_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetClusterRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetClusterResponse(_message.Message):
    __slots__ = ("cluster",)
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    cluster: _objects_pb2.Cluster
    def __init__(self, cluster: _Optional[_Union[_objects_pb2.Cluster, _Mapping]] = ...) -> None: ...

class UpdateClusterRequest(_message.Message):
    __slots__ = ("heartbeat_period_ns", "node_cert_expiry_ns", "task_history_limit", "autolock")
    HEARTBEAT_PERIOD_NS_FIELD_NUMBER: _ClassVar[int]
    NODE_CERT_EXPIRY_NS_FIELD_NUMBER: _ClassVar[int]
    TASK_HISTORY_LIMIT_FIELD_NUMBER: _ClassVar[int]
    AUTOLOCK_FIELD_NUMBER: _ClassVar[int]
    heartbeat_period_ns: int
    node_cert_expiry_ns: int
    task_history_limit: int
    autolock: bool
    def __init__(self, heartbeat_period_ns: _Optional[int] = ..., node_cert_expiry_ns: _Optional[int] = ..., task_history_limit: _Optional[int] = ..., autolock: _Optional[bool] = ...) -> None: ...

class UpdateClusterResponse(_message.Message):
    __slots__ = ("cluster",)
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    cluster: _objects_pb2.Cluster
    def __init__(self, cluster: _Optional[_Union[_objects_pb2.Cluster, _Mapping]] = ...) -> None: ...

class UnlockKeyRequest(_message.Message):
    __slots__ = ("rotate",)
    ROTATE_FIELD_NUMBER: _ClassVar[int]
    rotate: bool
    def __init__(self, rotate: _Optional[bool] = ...) -> None: ...

class UnlockKeyResponse(_message.Message):
    __slots__ = ("unlock_key",)
    UNLOCK_KEY_FIELD_NUMBER: _ClassVar[int]
    unlock_key: str
    def __init__(self, unlock_key: _Optional[str] = ...) -> None: ...

class RotateRootCARequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RotateRootCAResponse(_message.Message):
    __slots__ = ("cluster",)
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    cluster: _objects_pb2.Cluster
    def __init__(self, cluster: _Optional[_Union[_objects_pb2.Cluster, _Mapping]] = ...) -> None: ...

class ListNodesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListNodesResponse(_message.Message):
    __slots__ = ("nodes",)
    NODES_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedCompositeFieldContainer[_objects_pb2.Node]
    def __init__(self, nodes: _Optional[_Iterable[_Union[_objects_pb2.Node, _Mapping]]] = ...) -> None: ...

class GetNodeRequest(_message.Message):
    __slots__ = ("node",)
    NODE_FIELD_NUMBER: _ClassVar[int]
    node: str
    def __init__(self, node: _Optional[str] = ...) -> None: ...

class GetNodeResponse(_message.Message):
    __slots__ = ("node",)
    NODE_FIELD_NUMBER: _ClassVar[int]
    node: _objects_pb2.Node
    def __init__(self, node: _Optional[_Union[_objects_pb2.Node, _Mapping]] = ...) -> None: ...

class UpdateNodeRequest(_message.Message):
    __slots__ = ("node", "set_availability", "availability", "labels_add", "labels_remove", "set_role", "role")
    class LabelsAddEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NODE_FIELD_NUMBER: _ClassVar[int]
    SET_AVAILABILITY_FIELD_NUMBER: _ClassVar[int]
    AVAILABILITY_FIELD_NUMBER: _ClassVar[int]
    LABELS_ADD_FIELD_NUMBER: _ClassVar[int]
    LABELS_REMOVE_FIELD_NUMBER: _ClassVar[int]
    SET_ROLE_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    node: str
    set_availability: bool
    availability: _objects_pb2.Availability
    labels_add: _containers.ScalarMap[str, str]
    labels_remove: _containers.RepeatedScalarFieldContainer[str]
    set_role: bool
    role: _objects_pb2.NodeRole
    def __init__(self, node: _Optional[str] = ..., set_availability: _Optional[bool] = ..., availability: _Optional[_Union[_objects_pb2.Availability, str]] = ..., labels_add: _Optional[_Mapping[str, str]] = ..., labels_remove: _Optional[_Iterable[str]] = ..., set_role: _Optional[bool] = ..., role: _Optional[_Union[_objects_pb2.NodeRole, str]] = ...) -> None: ...

class UpdateNodeResponse(_message.Message):
    __slots__ = ("node",)
    NODE_FIELD_NUMBER: _ClassVar[int]
    node: _objects_pb2.Node
    def __init__(self, node: _Optional[_Union[_objects_pb2.Node, _Mapping]] = ...) -> None: ...

class RemoveNodeRequest(_message.Message):
    __slots__ = ("node", "force")
    NODE_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    node: str
    force: bool
    def __init__(self, node: _Optional[str] = ..., force: _Optional[bool] = ...) -> None: ...

class RemoveNodeResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class JoinTokenRequest(_message.Message):
    __slots__ = ("role", "rotate")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    ROTATE_FIELD_NUMBER: _ClassVar[int]
    role: _objects_pb2.NodeRole
    rotate: bool
    def __init__(self, role: _Optional[_Union[_objects_pb2.NodeRole, str]] = ..., rotate: _Optional[bool] = ...) -> None: ...

class JoinTokenResponse(_message.Message):
    __slots__ = ("token", "manager_addr")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    MANAGER_ADDR_FIELD_NUMBER: _ClassVar[int]
    token: str
    manager_addr: str
    def __init__(self, token: _Optional[str] = ..., manager_addr: _Optional[str] = ...) -> None: ...

class CreateServiceRequest(_message.Message):
    __slots__ = ("spec", "registry_auth")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    REGISTRY_AUTH_FIELD_NUMBER: _ClassVar[int]
    spec: _specs_pb2.ServiceSpec
    registry_auth: _objects_pb2.RegistryAuth
    def __init__(self, spec: _Optional[_Union[_specs_pb2.ServiceSpec, _Mapping]] = ..., registry_auth: _Optional[_Union[_objects_pb2.RegistryAuth, _Mapping]] = ...) -> None: ...

class CreateServiceResponse(_message.Message):
    __slots__ = ("service",)
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    service: _objects_pb2.Service
    def __init__(self, service: _Optional[_Union[_objects_pb2.Service, _Mapping]] = ...) -> None: ...

class ListServicesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListServicesResponse(_message.Message):
    __slots__ = ("services",)
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    services: _containers.RepeatedCompositeFieldContainer[_objects_pb2.Service]
    def __init__(self, services: _Optional[_Iterable[_Union[_objects_pb2.Service, _Mapping]]] = ...) -> None: ...

class GetServiceRequest(_message.Message):
    __slots__ = ("service",)
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    service: str
    def __init__(self, service: _Optional[str] = ...) -> None: ...

class GetServiceResponse(_message.Message):
    __slots__ = ("service",)
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    service: _objects_pb2.Service
    def __init__(self, service: _Optional[_Union[_objects_pb2.Service, _Mapping]] = ...) -> None: ...

class ScaleServiceRequest(_message.Message):
    __slots__ = ("service", "replicas")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    service: str
    replicas: int
    def __init__(self, service: _Optional[str] = ..., replicas: _Optional[int] = ...) -> None: ...

class ScaleServiceResponse(_message.Message):
    __slots__ = ("service",)
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    service: _objects_pb2.Service
    def __init__(self, service: _Optional[_Union[_objects_pb2.Service, _Mapping]] = ...) -> None: ...

class UpdateServiceRequest(_message.Message):
    __slots__ = ("service", "spec", "expected_version", "rollback", "registry_auth")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    ROLLBACK_FIELD_NUMBER: _ClassVar[int]
    REGISTRY_AUTH_FIELD_NUMBER: _ClassVar[int]
    service: str
    spec: _specs_pb2.ServiceSpec
    expected_version: int
    rollback: bool
    registry_auth: _objects_pb2.RegistryAuth
    def __init__(self, service: _Optional[str] = ..., spec: _Optional[_Union[_specs_pb2.ServiceSpec, _Mapping]] = ..., expected_version: _Optional[int] = ..., rollback: _Optional[bool] = ..., registry_auth: _Optional[_Union[_objects_pb2.RegistryAuth, _Mapping]] = ...) -> None: ...

class UpdateServiceResponse(_message.Message):
    __slots__ = ("service",)
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    service: _objects_pb2.Service
    def __init__(self, service: _Optional[_Union[_objects_pb2.Service, _Mapping]] = ...) -> None: ...

class RemoveServiceRequest(_message.Message):
    __slots__ = ("service",)
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    service: str
    def __init__(self, service: _Optional[str] = ...) -> None: ...

class RemoveServiceResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListTasksRequest(_message.Message):
    __slots__ = ("service",)
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    service: str
    def __init__(self, service: _Optional[str] = ...) -> None: ...

class ListTasksResponse(_message.Message):
    __slots__ = ("tasks",)
    TASKS_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[_objects_pb2.Task]
    def __init__(self, tasks: _Optional[_Iterable[_Union[_objects_pb2.Task, _Mapping]]] = ...) -> None: ...

class ServiceLogsRequest(_message.Message):
    __slots__ = ("service", "follow", "tail", "since")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    TAIL_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    service: str
    follow: bool
    tail: int
    since: float
    def __init__(self, service: _Optional[str] = ..., follow: _Optional[bool] = ..., tail: _Optional[int] = ..., since: _Optional[float] = ...) -> None: ...

class ServiceLogsMessage(_message.Message):
    __slots__ = ("lines", "warnings")
    LINES_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    lines: _containers.RepeatedCompositeFieldContainer[ServiceLogLine]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, lines: _Optional[_Iterable[_Union[ServiceLogLine, _Mapping]]] = ..., warnings: _Optional[_Iterable[str]] = ...) -> None: ...

class ServiceLogLine(_message.Message):
    __slots__ = ("task_id", "node_id", "node_hostname", "slot", "time", "stream", "line")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    SLOT_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    LINE_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    node_id: str
    node_hostname: str
    slot: int
    time: float
    stream: str
    line: str
    def __init__(self, task_id: _Optional[str] = ..., node_id: _Optional[str] = ..., node_hostname: _Optional[str] = ..., slot: _Optional[int] = ..., time: _Optional[float] = ..., stream: _Optional[str] = ..., line: _Optional[str] = ...) -> None: ...

class BackupRequest(_message.Message):
    __slots__ = ("passphrase", "with_unlock_key")
    PASSPHRASE_FIELD_NUMBER: _ClassVar[int]
    WITH_UNLOCK_KEY_FIELD_NUMBER: _ClassVar[int]
    passphrase: str
    with_unlock_key: bool
    def __init__(self, passphrase: _Optional[str] = ..., with_unlock_key: _Optional[bool] = ...) -> None: ...

class BackupChunk(_message.Message):
    __slots__ = ("summary", "data")
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    summary: _backup_pb2.BackupSummary
    data: bytes
    def __init__(self, summary: _Optional[_Union[_backup_pb2.BackupSummary, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class CreateNetworkRequest(_message.Message):
    __slots__ = ("spec",)
    SPEC_FIELD_NUMBER: _ClassVar[int]
    spec: _specs_pb2.NetworkSpec
    def __init__(self, spec: _Optional[_Union[_specs_pb2.NetworkSpec, _Mapping]] = ...) -> None: ...

class CreateNetworkResponse(_message.Message):
    __slots__ = ("network",)
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    network: _objects_pb2.Network
    def __init__(self, network: _Optional[_Union[_objects_pb2.Network, _Mapping]] = ...) -> None: ...

class ListNetworksRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListNetworksResponse(_message.Message):
    __slots__ = ("networks",)
    NETWORKS_FIELD_NUMBER: _ClassVar[int]
    networks: _containers.RepeatedCompositeFieldContainer[_objects_pb2.Network]
    def __init__(self, networks: _Optional[_Iterable[_Union[_objects_pb2.Network, _Mapping]]] = ...) -> None: ...

class GetNetworkRequest(_message.Message):
    __slots__ = ("network",)
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    network: str
    def __init__(self, network: _Optional[str] = ...) -> None: ...

class GetNetworkResponse(_message.Message):
    __slots__ = ("network",)
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    network: _objects_pb2.Network
    def __init__(self, network: _Optional[_Union[_objects_pb2.Network, _Mapping]] = ...) -> None: ...

class RemoveNetworkRequest(_message.Message):
    __slots__ = ("network",)
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    network: str
    def __init__(self, network: _Optional[str] = ...) -> None: ...

class RemoveNetworkResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PruneNetworksRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PruneNetworksResponse(_message.Message):
    __slots__ = ("removed",)
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    removed: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, removed: _Optional[_Iterable[str]] = ...) -> None: ...

class DeployStackRequest(_message.Message):
    __slots__ = ("spec", "prune", "dry_run", "registry_auths", "resolve_image")
    class RegistryAuthsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _objects_pb2.RegistryAuth
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_objects_pb2.RegistryAuth, _Mapping]] = ...) -> None: ...
    SPEC_FIELD_NUMBER: _ClassVar[int]
    PRUNE_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    REGISTRY_AUTHS_FIELD_NUMBER: _ClassVar[int]
    RESOLVE_IMAGE_FIELD_NUMBER: _ClassVar[int]
    spec: _specs_pb2.StackSpec
    prune: bool
    dry_run: bool
    registry_auths: _containers.MessageMap[str, _objects_pb2.RegistryAuth]
    resolve_image: str
    def __init__(self, spec: _Optional[_Union[_specs_pb2.StackSpec, _Mapping]] = ..., prune: _Optional[bool] = ..., dry_run: _Optional[bool] = ..., registry_auths: _Optional[_Mapping[str, _objects_pb2.RegistryAuth]] = ..., resolve_image: _Optional[str] = ...) -> None: ...

class StackChange(_message.Message):
    __slots__ = ("action", "kind", "name", "id")
    class Action(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        CREATE: _ClassVar[StackChange.Action]
        UPDATE: _ClassVar[StackChange.Action]
        REMOVE: _ClassVar[StackChange.Action]
        UNCHANGED: _ClassVar[StackChange.Action]
    CREATE: StackChange.Action
    UPDATE: StackChange.Action
    REMOVE: StackChange.Action
    UNCHANGED: StackChange.Action
    ACTION_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    action: StackChange.Action
    kind: str
    name: str
    id: str
    def __init__(self, action: _Optional[_Union[StackChange.Action, str]] = ..., kind: _Optional[str] = ..., name: _Optional[str] = ..., id: _Optional[str] = ...) -> None: ...

class DeployStackResponse(_message.Message):
    __slots__ = ("stack", "changes", "warnings")
    STACK_FIELD_NUMBER: _ClassVar[int]
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    stack: _objects_pb2.Stack
    changes: _containers.RepeatedCompositeFieldContainer[StackChange]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, stack: _Optional[_Union[_objects_pb2.Stack, _Mapping]] = ..., changes: _Optional[_Iterable[_Union[StackChange, _Mapping]]] = ..., warnings: _Optional[_Iterable[str]] = ...) -> None: ...

class ListStacksRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListStacksResponse(_message.Message):
    __slots__ = ("stacks",)
    STACKS_FIELD_NUMBER: _ClassVar[int]
    stacks: _containers.RepeatedCompositeFieldContainer[_objects_pb2.Stack]
    def __init__(self, stacks: _Optional[_Iterable[_Union[_objects_pb2.Stack, _Mapping]]] = ...) -> None: ...

class GetStackRequest(_message.Message):
    __slots__ = ("stack",)
    STACK_FIELD_NUMBER: _ClassVar[int]
    stack: str
    def __init__(self, stack: _Optional[str] = ...) -> None: ...

class GetStackResponse(_message.Message):
    __slots__ = ("stack",)
    STACK_FIELD_NUMBER: _ClassVar[int]
    stack: _objects_pb2.Stack
    def __init__(self, stack: _Optional[_Union[_objects_pb2.Stack, _Mapping]] = ...) -> None: ...

class RemoveStackRequest(_message.Message):
    __slots__ = ("stack",)
    STACK_FIELD_NUMBER: _ClassVar[int]
    stack: str
    def __init__(self, stack: _Optional[str] = ...) -> None: ...

class RemoveStackResponse(_message.Message):
    __slots__ = ("changes",)
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    changes: _containers.RepeatedCompositeFieldContainer[StackChange]
    def __init__(self, changes: _Optional[_Iterable[_Union[StackChange, _Mapping]]] = ...) -> None: ...

class RollbackStackRequest(_message.Message):
    __slots__ = ("stack",)
    STACK_FIELD_NUMBER: _ClassVar[int]
    stack: str
    def __init__(self, stack: _Optional[str] = ...) -> None: ...

class RollbackStackResponse(_message.Message):
    __slots__ = ("stack", "changes")
    STACK_FIELD_NUMBER: _ClassVar[int]
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    stack: _objects_pb2.Stack
    changes: _containers.RepeatedCompositeFieldContainer[StackChange]
    def __init__(self, stack: _Optional[_Union[_objects_pb2.Stack, _Mapping]] = ..., changes: _Optional[_Iterable[_Union[StackChange, _Mapping]]] = ...) -> None: ...

class CreateSecretRequest(_message.Message):
    __slots__ = ("spec",)
    SPEC_FIELD_NUMBER: _ClassVar[int]
    spec: _specs_pb2.SecretSpec
    def __init__(self, spec: _Optional[_Union[_specs_pb2.SecretSpec, _Mapping]] = ...) -> None: ...

class CreateSecretResponse(_message.Message):
    __slots__ = ("secret",)
    SECRET_FIELD_NUMBER: _ClassVar[int]
    secret: _objects_pb2.Secret
    def __init__(self, secret: _Optional[_Union[_objects_pb2.Secret, _Mapping]] = ...) -> None: ...

class ListSecretsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListSecretsResponse(_message.Message):
    __slots__ = ("secrets",)
    SECRETS_FIELD_NUMBER: _ClassVar[int]
    secrets: _containers.RepeatedCompositeFieldContainer[_objects_pb2.Secret]
    def __init__(self, secrets: _Optional[_Iterable[_Union[_objects_pb2.Secret, _Mapping]]] = ...) -> None: ...

class GetSecretRequest(_message.Message):
    __slots__ = ("secret",)
    SECRET_FIELD_NUMBER: _ClassVar[int]
    secret: str
    def __init__(self, secret: _Optional[str] = ...) -> None: ...

class GetSecretResponse(_message.Message):
    __slots__ = ("secret",)
    SECRET_FIELD_NUMBER: _ClassVar[int]
    secret: _objects_pb2.Secret
    def __init__(self, secret: _Optional[_Union[_objects_pb2.Secret, _Mapping]] = ...) -> None: ...

class RemoveSecretRequest(_message.Message):
    __slots__ = ("secret",)
    SECRET_FIELD_NUMBER: _ClassVar[int]
    secret: str
    def __init__(self, secret: _Optional[str] = ...) -> None: ...

class RemoveSecretResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CreateConfigRequest(_message.Message):
    __slots__ = ("spec",)
    SPEC_FIELD_NUMBER: _ClassVar[int]
    spec: _specs_pb2.ConfigSpec
    def __init__(self, spec: _Optional[_Union[_specs_pb2.ConfigSpec, _Mapping]] = ...) -> None: ...

class CreateConfigResponse(_message.Message):
    __slots__ = ("config",)
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    config: _objects_pb2.Config
    def __init__(self, config: _Optional[_Union[_objects_pb2.Config, _Mapping]] = ...) -> None: ...

class ListConfigsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListConfigsResponse(_message.Message):
    __slots__ = ("configs",)
    CONFIGS_FIELD_NUMBER: _ClassVar[int]
    configs: _containers.RepeatedCompositeFieldContainer[_objects_pb2.Config]
    def __init__(self, configs: _Optional[_Iterable[_Union[_objects_pb2.Config, _Mapping]]] = ...) -> None: ...

class GetConfigRequest(_message.Message):
    __slots__ = ("config",)
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    config: str
    def __init__(self, config: _Optional[str] = ...) -> None: ...

class GetConfigResponse(_message.Message):
    __slots__ = ("config",)
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    config: _objects_pb2.Config
    def __init__(self, config: _Optional[_Union[_objects_pb2.Config, _Mapping]] = ...) -> None: ...

class RemoveConfigRequest(_message.Message):
    __slots__ = ("config",)
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    config: str
    def __init__(self, config: _Optional[str] = ...) -> None: ...

class RemoveConfigResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
