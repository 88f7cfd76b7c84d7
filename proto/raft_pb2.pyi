from proto import store_pb2 as _store_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RaftLogEntry(_message.Message):
    __slots__ = ("command", "index", "term")
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    command: bytes
    index: int
    term: int
    def __init__(self, command: _Optional[bytes] = ..., index: _Optional[int] = ..., term: _Optional[int] = ...) -> None: ...

class RaftTableEntry(_message.Message):
    __slots__ = ("table", "id", "object")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    table: str
    id: str
    object: bytes
    def __init__(self, table: _Optional[str] = ..., id: _Optional[str] = ..., object: _Optional[bytes] = ...) -> None: ...

class RaftSnapshot(_message.Message):
    __slots__ = ("format_version", "entries", "last_entry", "prev_entry", "members", "tables", "store")
    FORMAT_VERSION_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    LAST_ENTRY_FIELD_NUMBER: _ClassVar[int]
    PREV_ENTRY_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    TABLES_FIELD_NUMBER: _ClassVar[int]
    STORE_FIELD_NUMBER: _ClassVar[int]
    format_version: int
    entries: _containers.RepeatedCompositeFieldContainer[RaftTableEntry]
    last_entry: RaftLogEntry
    prev_entry: RaftLogEntry
    members: _containers.RepeatedScalarFieldContainer[str]
    tables: _containers.RepeatedScalarFieldContainer[str]
    store: _store_pb2.StoreSnapshot
    def __init__(self, format_version: _Optional[int] = ..., entries: _Optional[_Iterable[_Union[RaftTableEntry, _Mapping]]] = ..., last_entry: _Optional[_Union[RaftLogEntry, _Mapping]] = ..., prev_entry: _Optional[_Union[RaftLogEntry, _Mapping]] = ..., members: _Optional[_Iterable[str]] = ..., tables: _Optional[_Iterable[str]] = ..., store: _Optional[_Union[_store_pb2.StoreSnapshot, _Mapping]] = ...) -> None: ...
