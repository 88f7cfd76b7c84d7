from proto import specs_pb2 as _specs_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class NodeRole(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WORKER: _ClassVar[NodeRole]
    MANAGER: _ClassVar[NodeRole]

class Availability(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACTIVE: _ClassVar[Availability]
    PAUSE: _ClassVar[Availability]
    DRAIN: _ClassVar[Availability]

class TaskState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NEW: _ClassVar[TaskState]
    PENDING: _ClassVar[TaskState]
    ASSIGNED: _ClassVar[TaskState]
    ACCEPTED: _ClassVar[TaskState]
    PREPARING: _ClassVar[TaskState]
    READY: _ClassVar[TaskState]
    STARTING: _ClassVar[TaskState]
    RUNNING: _ClassVar[TaskState]
    COMPLETE: _ClassVar[TaskState]
    SHUTDOWN: _ClassVar[TaskState]
    FAILED: _ClassVar[TaskState]
    REJECTED: _ClassVar[TaskState]
    REMOVE: _ClassVar[TaskState]
    ORPHANED: _ClassVar[TaskState]
WORKER: NodeRole
MANAGER: NodeRole
ACTIVE: Availability
PAUSE: Availability
DRAIN: Availability
NEW: TaskState
PENDING: TaskState
ASSIGNED: TaskState
ACCEPTED: TaskState
PREPARING: TaskState
READY: TaskState
STARTING: TaskState
RUNNING: TaskState
COMPLETE: TaskState
SHUTDOWN: TaskState
FAILED: TaskState
REJECTED: TaskState
REMOVE: TaskState
ORPHANED: TaskState

class Meta(_message.Message):
    __slots__ = ("version", "created_at_ns", "updated_at_ns")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_NS_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_NS_FIELD_NUMBER: _ClassVar[int]
    version: int
    created_at_ns: int
    updated_at_ns: int
    def __init__(self, version: _Optional[int] = ..., created_at_ns: _Optional[int] = ..., updated_at_ns: _Optional[int] = ...) -> None: ...

class Duration(_message.Message):
    __slots__ = ("nanos",)
    NANOS_FIELD_NUMBER: _ClassVar[int]
    nanos: int
    def __init__(self, nanos: _Optional[int] = ...) -> None: ...

class JoinTokens(_message.Message):
    __slots__ = ("worker", "manager")
    WORKER_FIELD_NUMBER: _ClassVar[int]
    MANAGER_FIELD_NUMBER: _ClassVar[int]
    worker: str
    manager: str
    def __init__(self, worker: _Optional[str] = ..., manager: _Optional[str] = ...) -> None: ...

class RootCA(_message.Message):
    __slots__ = ("ca_cert_pem", "ca_key_pem", "ca_digest", "previous_ca_cert_pem")
    CA_CERT_PEM_FIELD_NUMBER: _ClassVar[int]
    CA_KEY_PEM_FIELD_NUMBER: _ClassVar[int]
    CA_DIGEST_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_CA_CERT_PEM_FIELD_NUMBER: _ClassVar[int]
    ca_cert_pem: bytes
    ca_key_pem: bytes
    ca_digest: str
    previous_ca_cert_pem: bytes
    def __init__(self, ca_cert_pem: _Optional[bytes] = ..., ca_key_pem: _Optional[bytes] = ..., ca_digest: _Optional[str] = ..., previous_ca_cert_pem: _Optional[bytes] = ...) -> None: ...

class ClusterSpec(_message.Message):
    __slots__ = ("name", "heartbeat_period_ns", "node_cert_expiry_ns", "labels", "task_history_limit", "autolock")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_PERIOD_NS_FIELD_NUMBER: _ClassVar[int]
    NODE_CERT_EXPIRY_NS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    TASK_HISTORY_LIMIT_FIELD_NUMBER: _ClassVar[int]
    AUTOLOCK_FIELD_NUMBER: _ClassVar[int]
    name: str
    heartbeat_period_ns: int
    node_cert_expiry_ns: int
    labels: _containers.ScalarMap[str, str]
    task_history_limit: int
    autolock: bool
    def __init__(self, name: _Optional[str] = ..., heartbeat_period_ns: _Optional[int] = ..., node_cert_expiry_ns: _Optional[int] = ..., labels: _Optional[_Mapping[str, str]] = ..., task_history_limit: _Optional[int] = ..., autolock: _Optional[bool] = ...) -> None: ...

class Cluster(_message.Message):
    __slots__ = ("id", "meta", "spec", "root_ca", "join_tokens", "raft_key", "removed_nodes", "network_defaults", "unlock_key")
    ID_FIELD_NUMBER: _ClassVar[int]
    META_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    ROOT_CA_FIELD_NUMBER: _ClassVar[int]
    JOIN_TOKENS_FIELD_NUMBER: _ClassVar[int]
    RAFT_KEY_FIELD_NUMBER: _ClassVar[int]
    REMOVED_NODES_FIELD_NUMBER: _ClassVar[int]
    NETWORK_DEFAULTS_FIELD_NUMBER: _ClassVar[int]
    UNLOCK_KEY_FIELD_NUMBER: _ClassVar[int]
    id: str
    meta: Meta
    spec: ClusterSpec
    root_ca: RootCA
    join_tokens: JoinTokens
    raft_key: bytes
    removed_nodes: _containers.RepeatedScalarFieldContainer[str]
    network_defaults: NetworkDefaults
    unlock_key: bytes
    def __init__(self, id: _Optional[str] = ..., meta: _Optional[_Union[Meta, _Mapping]] = ..., spec: _Optional[_Union[ClusterSpec, _Mapping]] = ..., root_ca: _Optional[_Union[RootCA, _Mapping]] = ..., join_tokens: _Optional[_Union[JoinTokens, _Mapping]] = ..., raft_key: _Optional[bytes] = ..., removed_nodes: _Optional[_Iterable[str]] = ..., network_defaults: _Optional[_Union[NetworkDefaults, _Mapping]] = ..., unlock_key: _Optional[bytes] = ...) -> None: ...

class NetworkDefaults(_message.Message):
    __slots__ = ("addr_pools", "subnet_size", "data_path_port")
    ADDR_POOLS_FIELD_NUMBER: _ClassVar[int]
    SUBNET_SIZE_FIELD_NUMBER: _ClassVar[int]
    DATA_PATH_PORT_FIELD_NUMBER: _ClassVar[int]
    addr_pools: _containers.RepeatedScalarFieldContainer[str]
    subnet_size: int
    data_path_port: int
    def __init__(self, addr_pools: _Optional[_Iterable[str]] = ..., subnet_size: _Optional[int] = ..., data_path_port: _Optional[int] = ...) -> None: ...

class NodeSpec(_message.Message):
    __slots__ = ("desired_role", "availability", "labels")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    DESIRED_ROLE_FIELD_NUMBER: _ClassVar[int]
    AVAILABILITY_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    desired_role: NodeRole
    availability: Availability
    labels: _containers.ScalarMap[str, str]
    def __init__(self, desired_role: _Optional[_Union[NodeRole, str]] = ..., availability: _Optional[_Union[Availability, str]] = ..., labels: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Platform(_message.Message):
    __slots__ = ("os", "architecture")
    OS_FIELD_NUMBER: _ClassVar[int]
    ARCHITECTURE_FIELD_NUMBER: _ClassVar[int]
    os: str
    architecture: str
    def __init__(self, os: _Optional[str] = ..., architecture: _Optional[str] = ...) -> None: ...

class Resources(_message.Message):
    __slots__ = ("nano_cpus", "memory_bytes")
    NANO_CPUS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    nano_cpus: int
    memory_bytes: int
    def __init__(self, nano_cpus: _Optional[int] = ..., memory_bytes: _Optional[int] = ...) -> None: ...

class NodeDescription(_message.Message):
    __slots__ = ("hostname", "platform", "resources", "engine_version", "engine_labels")
    class EngineLabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    ENGINE_VERSION_FIELD_NUMBER: _ClassVar[int]
    ENGINE_LABELS_FIELD_NUMBER: _ClassVar[int]
    hostname: str
    platform: Platform
    resources: Resources
    engine_version: str
    engine_labels: _containers.ScalarMap[str, str]
    def __init__(self, hostname: _Optional[str] = ..., platform: _Optional[_Union[Platform, _Mapping]] = ..., resources: _Optional[_Union[Resources, _Mapping]] = ..., engine_version: _Optional[str] = ..., engine_labels: _Optional[_Mapping[str, str]] = ...) -> None: ...

class NodeStatus(_message.Message):
    __slots__ = ("state", "message", "addr")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        UNKNOWN: _ClassVar[NodeStatus.State]
        DOWN: _ClassVar[NodeStatus.State]
        READY: _ClassVar[NodeStatus.State]
        DISCONNECTED: _ClassVar[NodeStatus.State]
    UNKNOWN: NodeStatus.State
    DOWN: NodeStatus.State
    READY: NodeStatus.State
    DISCONNECTED: NodeStatus.State
    STATE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ADDR_FIELD_NUMBER: _ClassVar[int]
    state: NodeStatus.State
    message: str
    addr: str
    def __init__(self, state: _Optional[_Union[NodeStatus.State, str]] = ..., message: _Optional[str] = ..., addr: _Optional[str] = ...) -> None: ...

class ManagerStatus(_message.Message):
    __slots__ = ("raft_addr", "api_addr", "leader", "reachability", "message")
    class Reachability(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        UNKNOWN: _ClassVar[ManagerStatus.Reachability]
        UNREACHABLE: _ClassVar[ManagerStatus.Reachability]
        REACHABLE: _ClassVar[ManagerStatus.Reachability]
    UNKNOWN: ManagerStatus.Reachability
    UNREACHABLE: ManagerStatus.Reachability
    REACHABLE: ManagerStatus.Reachability
    RAFT_ADDR_FIELD_NUMBER: _ClassVar[int]
    API_ADDR_FIELD_NUMBER: _ClassVar[int]
    LEADER_FIELD_NUMBER: _ClassVar[int]
    REACHABILITY_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    raft_addr: str
    api_addr: str
    leader: bool
    reachability: ManagerStatus.Reachability
    message: str
    def __init__(self, raft_addr: _Optional[str] = ..., api_addr: _Optional[str] = ..., leader: _Optional[bool] = ..., reachability: _Optional[_Union[ManagerStatus.Reachability, str]] = ..., message: _Optional[str] = ...) -> None: ...

class Node(_message.Message):
    __slots__ = ("id", "meta", "spec", "description", "status", "manager_status", "role", "attachments", "cert_ca_digest")
    ID_FIELD_NUMBER: _ClassVar[int]
    META_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    MANAGER_STATUS_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    ATTACHMENTS_FIELD_NUMBER: _ClassVar[int]
    CERT_CA_DIGEST_FIELD_NUMBER: _ClassVar[int]
    id: str
    meta: Meta
    spec: NodeSpec
    description: NodeDescription
    status: NodeStatus
    manager_status: ManagerStatus
    role: NodeRole
    attachments: _containers.RepeatedCompositeFieldContainer[NetworkAttachment]
    cert_ca_digest: str
    def __init__(self, id: _Optional[str] = ..., meta: _Optional[_Union[Meta, _Mapping]] = ..., spec: _Optional[_Union[NodeSpec, _Mapping]] = ..., description: _Optional[_Union[NodeDescription, _Mapping]] = ..., status: _Optional[_Union[NodeStatus, _Mapping]] = ..., manager_status: _Optional[_Union[ManagerStatus, _Mapping]] = ..., role: _Optional[_Union[NodeRole, str]] = ..., attachments: _Optional[_Iterable[_Union[NetworkAttachment, _Mapping]]] = ..., cert_ca_digest: _Optional[str] = ...) -> None: ...

class Service(_message.Message):
    __slots__ = ("id", "meta", "spec", "spec_version", "previous_spec", "update_status", "virtual_ips", "ports", "registry_auth")
    ID_FIELD_NUMBER: _ClassVar[int]
    META_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    SPEC_VERSION_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_SPEC_FIELD_NUMBER: _ClassVar[int]
    UPDATE_STATUS_FIELD_NUMBER: _ClassVar[int]
    VIRTUAL_IPS_FIELD_NUMBER: _ClassVar[int]
    PORTS_FIELD_NUMBER: _ClassVar[int]
    REGISTRY_AUTH_FIELD_NUMBER: _ClassVar[int]
    id: str
    meta: Meta
    spec: _specs_pb2.ServiceSpec
    spec_version: int
    previous_spec: _specs_pb2.ServiceSpec
    update_status: UpdateStatus
    virtual_ips: _containers.RepeatedCompositeFieldContainer[VirtualIP]
    ports: _containers.RepeatedCompositeFieldContainer[_specs_pb2.PortConfig]
    registry_auth: RegistryAuth
    def __init__(self, id: _Optional[str] = ..., meta: _Optional[_Union[Meta, _Mapping]] = ..., spec: _Optional[_Union[_specs_pb2.ServiceSpec, _Mapping]] = ..., spec_version: _Optional[int] = ..., previous_spec: _Optional[_Union[_specs_pb2.ServiceSpec, _Mapping]] = ..., update_status: _Optional[_Union[UpdateStatus, _Mapping]] = ..., virtual_ips: _Optional[_Iterable[_Union[VirtualIP, _Mapping]]] = ..., ports: _Optional[_Iterable[_Union[_specs_pb2.PortConfig, _Mapping]]] = ..., registry_auth: _Optional[_Union[RegistryAuth, _Mapping]] = ...) -> None: ...

class RegistryAuth(_message.Message):
    __slots__ = ("registry", "username", "password")
    REGISTRY_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    registry: str
    username: str
    password: str
    def __init__(self, registry: _Optional[str] = ..., username: _Optional[str] = ..., password: _Optional[str] = ...) -> None: ...

class VirtualIP(_message.Message):
    __slots__ = ("network_id", "addr")
    NETWORK_ID_FIELD_NUMBER: _ClassVar[int]
    ADDR_FIELD_NUMBER: _ClassVar[int]
    network_id: str
    addr: str
    def __init__(self, network_id: _Optional[str] = ..., addr: _Optional[str] = ...) -> None: ...

class UpdateStatus(_message.Message):
    __slots__ = ("state", "started_at_ns", "completed_at_ns", "message", "last_batch_at_ns", "failures")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        NONE: _ClassVar[UpdateStatus.State]
        UPDATING: _ClassVar[UpdateStatus.State]
        PAUSED: _ClassVar[UpdateStatus.State]
        COMPLETED: _ClassVar[UpdateStatus.State]
        ROLLBACK_STARTED: _ClassVar[UpdateStatus.State]
        ROLLBACK_PAUSED: _ClassVar[UpdateStatus.State]
        ROLLBACK_COMPLETED: _ClassVar[UpdateStatus.State]
    NONE: UpdateStatus.State
    UPDATING: UpdateStatus.State
    PAUSED: UpdateStatus.State
    COMPLETED: UpdateStatus.State
    ROLLBACK_STARTED: UpdateStatus.State
    ROLLBACK_PAUSED: UpdateStatus.State
    ROLLBACK_COMPLETED: UpdateStatus.State
    STATE_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_NS_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_NS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    LAST_BATCH_AT_NS_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    state: UpdateStatus.State
    started_at_ns: int
    completed_at_ns: int
    message: str
    last_batch_at_ns: int
    failures: int
    def __init__(self, state: _Optional[_Union[UpdateStatus.State, str]] = ..., started_at_ns: _Optional[int] = ..., completed_at_ns: _Optional[int] = ..., message: _Optional[str] = ..., last_batch_at_ns: _Optional[int] = ..., failures: _Optional[int] = ...) -> None: ...

class TaskStatus(_message.Message):
    __slots__ = ("state", "timestamp_ns", "message", "err", "exit_code", "container_id")
    STATE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_NS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ERR_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_ID_FIELD_NUMBER: _ClassVar[int]
    state: TaskState
    timestamp_ns: int
    message: str
    err: str
    exit_code: int
    container_id: str
    def __init__(self, state: _Optional[_Union[TaskState, str]] = ..., timestamp_ns: _Optional[int] = ..., message: _Optional[str] = ..., err: _Optional[str] = ..., exit_code: _Optional[int] = ..., container_id: _Optional[str] = ...) -> None: ...

class PlacementExplanation(_message.Message):
    __slots__ = ("filters", "text")
    class Filter(_message.Message):
        __slots__ = ("name", "nodes_excluded", "reason")
        NAME_FIELD_NUMBER: _ClassVar[int]
        NODES_EXCLUDED_FIELD_NUMBER: _ClassVar[int]
        REASON_FIELD_NUMBER: _ClassVar[int]
        name: str
        nodes_excluded: int
        reason: str
        def __init__(self, name: _Optional[str] = ..., nodes_excluded: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    filters: _containers.RepeatedCompositeFieldContainer[PlacementExplanation.Filter]
    text: str
    def __init__(self, filters: _Optional[_Iterable[_Union[PlacementExplanation.Filter, _Mapping]]] = ..., text: _Optional[str] = ...) -> None: ...

class Task(_message.Message):
    __slots__ = ("id", "meta", "service_id", "slot", "node_id", "spec", "spec_version", "desired_state", "status", "explanation", "service_name", "networks", "host_ports")
    ID_FIELD_NUMBER: _ClassVar[int]
    META_FIELD_NUMBER: _ClassVar[int]
    SERVICE_ID_FIELD_NUMBER: _ClassVar[int]
    SLOT_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    SPEC_VERSION_FIELD_NUMBER: _ClassVar[int]
    DESIRED_STATE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    EXPLANATION_FIELD_NUMBER: _ClassVar[int]
    SERVICE_NAME_FIELD_NUMBER: _ClassVar[int]
    NETWORKS_FIELD_NUMBER: _ClassVar[int]
    HOST_PORTS_FIELD_NUMBER: _ClassVar[int]
    id: str
    meta: Meta
    service_id: str
    slot: int
    node_id: str
    spec: _specs_pb2.TaskSpec
    spec_version: int
    desired_state: TaskState
    status: TaskStatus
    explanation: PlacementExplanation
    service_name: str
    networks: _containers.RepeatedCompositeFieldContainer[NetworkAttachment]
    host_ports: _containers.RepeatedCompositeFieldContainer[_specs_pb2.PortConfig]
    def __init__(self, id: _Optional[str] = ..., meta: _Optional[_Union[Meta, _Mapping]] = ..., service_id: _Optional[str] = ..., slot: _Optional[int] = ..., node_id: _Optional[str] = ..., spec: _Optional[_Union[_specs_pb2.TaskSpec, _Mapping]] = ..., spec_version: _Optional[int] = ..., desired_state: _Optional[_Union[TaskState, str]] = ..., status: _Optional[_Union[TaskStatus, _Mapping]] = ..., explanation: _Optional[_Union[PlacementExplanation, _Mapping]] = ..., service_name: _Optional[str] = ..., networks: _Optional[_Iterable[_Union[NetworkAttachment, _Mapping]]] = ..., host_ports: _Optional[_Iterable[_Union[_specs_pb2.PortConfig, _Mapping]]] = ...) -> None: ...

class NetworkAttachment(_message.Message):
    __slots__ = ("network_id", "addr", "aliases")
    NETWORK_ID_FIELD_NUMBER: _ClassVar[int]
    ADDR_FIELD_NUMBER: _ClassVar[int]
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    network_id: str
    addr: str
    aliases: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, network_id: _Optional[str] = ..., addr: _Optional[str] = ..., aliases: _Optional[_Iterable[str]] = ...) -> None: ...

class Network(_message.Message):
    __slots__ = ("id", "meta", "spec", "subnet", "gateway", "vni")
    ID_FIELD_NUMBER: _ClassVar[int]
    META_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    SUBNET_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_FIELD_NUMBER: _ClassVar[int]
    VNI_FIELD_NUMBER: _ClassVar[int]
    id: str
    meta: Meta
    spec: _specs_pb2.NetworkSpec
    subnet: str
    gateway: str
    vni: int
    def __init__(self, id: _Optional[str] = ..., meta: _Optional[_Union[Meta, _Mapping]] = ..., spec: _Optional[_Union[_specs_pb2.NetworkSpec, _Mapping]] = ..., subnet: _Optional[str] = ..., gateway: _Optional[str] = ..., vni: _Optional[int] = ...) -> None: ...

class Stack(_message.Message):
    __slots__ = ("id", "meta", "spec", "previous_spec", "generation")
    ID_FIELD_NUMBER: _ClassVar[int]
    META_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_SPEC_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    id: str
    meta: Meta
    spec: _specs_pb2.StackSpec
    previous_spec: _specs_pb2.StackSpec
    generation: int
    def __init__(self, id: _Optional[str] = ..., meta: _Optional[_Union[Meta, _Mapping]] = ..., spec: _Optional[_Union[_specs_pb2.StackSpec, _Mapping]] = ..., previous_spec: _Optional[_Union[_specs_pb2.StackSpec, _Mapping]] = ..., generation: _Optional[int] = ...) -> None: ...

class Secret(_message.Message):
    __slots__ = ("id", "meta", "spec", "version")
    ID_FIELD_NUMBER: _ClassVar[int]
    META_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    id: str
    meta: Meta
    spec: _specs_pb2.SecretSpec
    version: int
    def __init__(self, id: _Optional[str] = ..., meta: _Optional[_Union[Meta, _Mapping]] = ..., spec: _Optional[_Union[_specs_pb2.SecretSpec, _Mapping]] = ..., version: _Optional[int] = ...) -> None: ...

class Config(_message.Message):
    __slots__ = ("id", "meta", "spec", "version")
    ID_FIELD_NUMBER: _ClassVar[int]
    META_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    id: str
    meta: Meta
    spec: _specs_pb2.ConfigSpec
    version: int
    def __init__(self, id: _Optional[str] = ..., meta: _Optional[_Union[Meta, _Mapping]] = ..., spec: _Optional[_Union[_specs_pb2.ConfigSpec, _Mapping]] = ..., version: _Optional[int] = ...) -> None: ...
