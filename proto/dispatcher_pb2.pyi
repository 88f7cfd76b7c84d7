from proto import objects_pb2 as _objects_pb2
from proto import specs_pb2 as _specs_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SessionRequest(_message.Message):
    __slots__ = ("description",)
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    description: _objects_pb2.NodeDescription
    def __init__(self, description: _Optional[_Union[_objects_pb2.NodeDescription, _Mapping]] = ...) -> None: ...

class SessionMessage(_message.Message):
    __slots__ = ("session_id", "managers", "heartbeat_period_ns", "ca_cert_pem", "role")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    MANAGERS_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_PERIOD_NS_FIELD_NUMBER: _ClassVar[int]
    CA_CERT_PEM_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    managers: _containers.RepeatedScalarFieldContainer[str]
    heartbeat_period_ns: int
    ca_cert_pem: bytes
    role: _objects_pb2.NodeRole
    def __init__(self, session_id: _Optional[str] = ..., managers: _Optional[_Iterable[str]] = ..., heartbeat_period_ns: _Optional[int] = ..., ca_cert_pem: _Optional[bytes] = ..., role: _Optional[_Union[_objects_pb2.NodeRole, str]] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ("period_ns",)
    PERIOD_NS_FIELD_NUMBER: _ClassVar[int]
    period_ns: int
    def __init__(self, period_ns: _Optional[int] = ...) -> None: ...

class LeaderRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class LeaderMessage(_message.Message):
    __slots__ = ("leader_addr",)
    LEADER_ADDR_FIELD_NUMBER: _ClassVar[int]
    leader_addr: str
    def __init__(self, leader_addr: _Optional[str] = ...) -> None: ...

class LeaveRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class LeaveResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AssignmentsRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class AssignmentsMessage(_message.Message):
    __slots__ = ("type", "sequence", "updated", "removed", "networks", "removed_networks", "secrets", "removed_secrets", "configs", "removed_configs", "registry_auths")
    class Type(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        COMPLETE: _ClassVar[AssignmentsMessage.Type]
        INCREMENTAL: _ClassVar[AssignmentsMessage.Type]
    COMPLETE: AssignmentsMessage.Type
    INCREMENTAL: AssignmentsMessage.Type
    class RegistryAuthsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _objects_pb2.RegistryAuth
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_objects_pb2.RegistryAuth, _Mapping]] = ...) -> None: ...
    TYPE_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    UPDATED_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    NETWORKS_FIELD_NUMBER: _ClassVar[int]
    REMOVED_NETWORKS_FIELD_NUMBER: _ClassVar[int]
    SECRETS_FIELD_NUMBER: _ClassVar[int]
    REMOVED_SECRETS_FIELD_NUMBER: _ClassVar[int]
    CONFIGS_FIELD_NUMBER: _ClassVar[int]
    REMOVED_CONFIGS_FIELD_NUMBER: _ClassVar[int]
    REGISTRY_AUTHS_FIELD_NUMBER: _ClassVar[int]
    type: AssignmentsMessage.Type
    sequence: int
    updated: _containers.RepeatedCompositeFieldContainer[_objects_pb2.Task]
    removed: _containers.RepeatedScalarFieldContainer[str]
    networks: _containers.RepeatedCompositeFieldContainer[NetworkView]
    removed_networks: _containers.RepeatedScalarFieldContainer[str]
    secrets: _containers.RepeatedCompositeFieldContainer[_objects_pb2.Secret]
    removed_secrets: _containers.RepeatedScalarFieldContainer[str]
    configs: _containers.RepeatedCompositeFieldContainer[_objects_pb2.Config]
    removed_configs: _containers.RepeatedScalarFieldContainer[str]
    registry_auths: _containers.MessageMap[str, _objects_pb2.RegistryAuth]
    def __init__(self, type: _Optional[_Union[AssignmentsMessage.Type, str]] = ..., sequence: _Optional[int] = ..., updated: _Optional[_Iterable[_Union[_objects_pb2.Task, _Mapping]]] = ..., removed: _Optional[_Iterable[str]] = ..., networks: _Optional[_Iterable[_Union[NetworkView, _Mapping]]] = ..., removed_networks: _Optional[_Iterable[str]] = ..., secrets: _Optional[_Iterable[_Union[_objects_pb2.Secret, _Mapping]]] = ..., removed_secrets: _Optional[_Iterable[str]] = ..., configs: _Optional[_Iterable[_Union[_objects_pb2.Config, _Mapping]]] = ..., removed_configs: _Optional[_Iterable[str]] = ..., registry_auths: _Optional[_Mapping[str, _objects_pb2.RegistryAuth]] = ...) -> None: ...

class NetworkView(_message.Message):
    __slots__ = ("network", "complete", "endpoints", "removed_endpoints", "services", "removed_services")
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_FIELD_NUMBER: _ClassVar[int]
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    REMOVED_ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    REMOVED_SERVICES_FIELD_NUMBER: _ClassVar[int]
    network: _objects_pb2.Network
    complete: bool
    endpoints: _containers.RepeatedCompositeFieldContainer[NetworkEndpoint]
    removed_endpoints: _containers.RepeatedScalarFieldContainer[str]
    services: _containers.RepeatedCompositeFieldContainer[NetworkService]
    removed_services: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, network: _Optional[_Union[_objects_pb2.Network, _Mapping]] = ..., complete: _Optional[bool] = ..., endpoints: _Optional[_Iterable[_Union[NetworkEndpoint, _Mapping]]] = ..., removed_endpoints: _Optional[_Iterable[str]] = ..., services: _Optional[_Iterable[_Union[NetworkService, _Mapping]]] = ..., removed_services: _Optional[_Iterable[str]] = ...) -> None: ...

class NetworkEndpoint(_message.Message):
    __slots__ = ("task_id", "service_id", "node_addr", "addr", "serving", "names", "node_id")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    SERVICE_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_ADDR_FIELD_NUMBER: _ClassVar[int]
    ADDR_FIELD_NUMBER: _ClassVar[int]
    SERVING_FIELD_NUMBER: _ClassVar[int]
    NAMES_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    service_id: str
    node_addr: str
    addr: str
    serving: bool
    names: _containers.RepeatedScalarFieldContainer[str]
    node_id: str
    def __init__(self, task_id: _Optional[str] = ..., service_id: _Optional[str] = ..., node_addr: _Optional[str] = ..., addr: _Optional[str] = ..., serving: _Optional[bool] = ..., names: _Optional[_Iterable[str]] = ..., node_id: _Optional[str] = ...) -> None: ...

class NetworkService(_message.Message):
    __slots__ = ("id", "name", "stack", "vip", "aliases", "ports", "labels")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STACK_FIELD_NUMBER: _ClassVar[int]
    VIP_FIELD_NUMBER: _ClassVar[int]
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    PORTS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    stack: str
    vip: str
    aliases: _containers.RepeatedScalarFieldContainer[str]
    ports: _containers.RepeatedCompositeFieldContainer[_specs_pb2.PortConfig]
    labels: _containers.ScalarMap[str, str]
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., stack: _Optional[str] = ..., vip: _Optional[str] = ..., aliases: _Optional[_Iterable[str]] = ..., ports: _Optional[_Iterable[_Union[_specs_pb2.PortConfig, _Mapping]]] = ..., labels: _Optional[_Mapping[str, str]] = ...) -> None: ...

class TaskStatusUpdate(_message.Message):
    __slots__ = ("task_id", "status")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    status: _objects_pb2.TaskStatus
    def __init__(self, task_id: _Optional[str] = ..., status: _Optional[_Union[_objects_pb2.TaskStatus, _Mapping]] = ...) -> None: ...

class UpdateTaskStatusRequest(_message.Message):
    __slots__ = ("session_id", "updates")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    UPDATES_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    updates: _containers.RepeatedCompositeFieldContainer[TaskStatusUpdate]
    def __init__(self, session_id: _Optional[str] = ..., updates: _Optional[_Iterable[_Union[TaskStatusUpdate, _Mapping]]] = ...) -> None: ...

class UpdateTaskStatusResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
