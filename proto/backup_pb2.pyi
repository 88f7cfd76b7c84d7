from proto import store_pb2 as _store_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Backup(_message.Message):
    __slots__ = ("format_version", "raft_index", "created_at_ns", "store")
    FORMAT_VERSION_FIELD_NUMBER: _ClassVar[int]
    RAFT_INDEX_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_NS_FIELD_NUMBER: _ClassVar[int]
    STORE_FIELD_NUMBER: _ClassVar[int]
    format_version: int
    raft_index: int
    created_at_ns: int
    store: _store_pb2.StoreSnapshot
    def __init__(self, format_version: _Optional[int] = ..., raft_index: _Optional[int] = ..., created_at_ns: _Optional[int] = ..., store: _Optional[_Union[_store_pb2.StoreSnapshot, _Mapping]] = ...) -> None: ...

class BackupSummary(_message.Message):
    __slots__ = ("raft_index", "cluster_id", "created_at_ns", "clusters", "nodes", "services", "tasks", "size", "networks")
    RAFT_INDEX_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_NS_FIELD_NUMBER: _ClassVar[int]
    CLUSTERS_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    NETWORKS_FIELD_NUMBER: _ClassVar[int]
    raft_index: int
    cluster_id: str
    created_at_ns: int
    clusters: int
    nodes: int
    services: int
    tasks: int
    size: int
    networks: int
    def __init__(self, raft_index: _Optional[int] = ..., cluster_id: _Optional[str] = ..., created_at_ns: _Optional[int] = ..., clusters: _Optional[int] = ..., nodes: _Optional[int] = ..., services: _Optional[int] = ..., tasks: _Optional[int] = ..., size: _Optional[int] = ..., networks: _Optional[int] = ...) -> None: ...
