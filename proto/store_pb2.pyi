from proto import objects_pb2 as _objects_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StoreAction(_message.Message):
    __slots__ = ("kind", "expected_version", "cluster", "node", "service", "task", "network", "stack", "secret", "config")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        CREATE: _ClassVar[StoreAction.Kind]
        UPDATE: _ClassVar[StoreAction.Kind]
        DELETE: _ClassVar[StoreAction.Kind]
    CREATE: StoreAction.Kind
    UPDATE: StoreAction.Kind
    DELETE: StoreAction.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    STACK_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    kind: StoreAction.Kind
    expected_version: int
    cluster: _objects_pb2.Cluster
    node: _objects_pb2.Node
    service: _objects_pb2.Service
    task: _objects_pb2.Task
    network: _objects_pb2.Network
    stack: _objects_pb2.Stack
    secret: _objects_pb2.Secret
    config: _objects_pb2.Config
    def __init__(self, kind: _Optional[_Union[StoreAction.Kind, str]] = ..., expected_version: _Optional[int] = ..., cluster: _Optional[_Union[_objects_pb2.Cluster, _Mapping]] = ..., node: _Optional[_Union[_objects_pb2.Node, _Mapping]] = ..., service: _Optional[_Union[_objects_pb2.Service, _Mapping]] = ..., task: _Optional[_Union[_objects_pb2.Task, _Mapping]] = ..., network: _Optional[_Union[_objects_pb2.Network, _Mapping]] = ..., stack: _Optional[_Union[_objects_pb2.Stack, _Mapping]] = ..., secret: _Optional[_Union[_objects_pb2.Secret, _Mapping]] = ..., config: _Optional[_Union[_objects_pb2.Config, _Mapping]] = ...) -> None: ...

class StoreBatch(_message.Message):
    __slots__ = ("actions", "format_version")
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    FORMAT_VERSION_FIELD_NUMBER: _ClassVar[int]
    actions: _containers.RepeatedCompositeFieldContainer[StoreAction]
    format_version: int
    def __init__(self, actions: _Optional[_Iterable[_Union[StoreAction, _Mapping]]] = ..., format_version: _Optional[int] = ...) -> None: ...

class StoreActionV1(_message.Message):
    __slots__ = ("kind", "table", "id", "expected_version", "object")
    KIND_FIELD_NUMBER: _ClassVar[int]
    TABLE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    kind: StoreAction.Kind
    table: str
    id: str
    expected_version: int
    object: bytes
    def __init__(self, kind: _Optional[_Union[StoreAction.Kind, str]] = ..., table: _Optional[str] = ..., id: _Optional[str] = ..., expected_version: _Optional[int] = ..., object: _Optional[bytes] = ...) -> None: ...

class StoreBatchV1(_message.Message):
    __slots__ = ("actions",)
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    actions: _containers.RepeatedCompositeFieldContainer[StoreActionV1]
    def __init__(self, actions: _Optional[_Iterable[_Union[StoreActionV1, _Mapping]]] = ...) -> None: ...

class StoreSnapshot(_message.Message):
    __slots__ = ("format_version", "clusters", "nodes", "services", "tasks", "networks", "stacks", "secrets", "configs")
    FORMAT_VERSION_FIELD_NUMBER: _ClassVar[int]
    CLUSTERS_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    NETWORKS_FIELD_NUMBER: _ClassVar[int]
    STACKS_FIELD_NUMBER: _ClassVar[int]
    SECRETS_FIELD_NUMBER: _ClassVar[int]
    CONFIGS_FIELD_NUMBER: _ClassVar[int]
    format_version: int
    clusters: _containers.RepeatedCompositeFieldContainer[_objects_pb2.Cluster]
    nodes: _containers.RepeatedCompositeFieldContainer[_objects_pb2.Node]
    services: _containers.RepeatedCompositeFieldContainer[_objects_pb2.Service]
    tasks: _containers.RepeatedCompositeFieldContainer[_objects_pb2.Task]
    networks: _containers.RepeatedCompositeFieldContainer[_objects_pb2.Network]
    stacks: _containers.RepeatedCompositeFieldContainer[_objects_pb2.Stack]
    secrets: _containers.RepeatedCompositeFieldContainer[_objects_pb2.Secret]
    configs: _containers.RepeatedCompositeFieldContainer[_objects_pb2.Config]
    def __init__(self, format_version: _Optional[int] = ..., clusters: _Optional[_Iterable[_Union[_objects_pb2.Cluster, _Mapping]]] = ..., nodes: _Optional[_Iterable[_Union[_objects_pb2.Node, _Mapping]]] = ..., services: _Optional[_Iterable[_Union[_objects_pb2.Service, _Mapping]]] = ..., tasks: _Optional[_Iterable[_Union[_objects_pb2.Task, _Mapping]]] = ..., networks: _Optional[_Iterable[_Union[_objects_pb2.Network, _Mapping]]] = ..., stacks: _Optional[_Iterable[_Union[_objects_pb2.Stack, _Mapping]]] = ..., secrets: _Optional[_Iterable[_Union[_objects_pb2.Secret, _Mapping]]] = ..., configs: _Optional[_Iterable[_Union[_objects_pb2.Config, _Mapping]]] = ...) -> None: ...
