from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LogSubscriptionsRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class LogSubscription(_message.Message):
    __slots__ = ("id", "service_id", "follow", "tail", "since", "close")
    ID_FIELD_NUMBER: _ClassVar[int]
    SERVICE_ID_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    TAIL_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    CLOSE_FIELD_NUMBER: _ClassVar[int]
    id: str
    service_id: str
    follow: bool
    tail: int
    since: float
    close: bool
    def __init__(self, id: _Optional[str] = ..., service_id: _Optional[str] = ..., follow: _Optional[bool] = ..., tail: _Optional[int] = ..., since: _Optional[float] = ..., close: _Optional[bool] = ...) -> None: ...

class TaskLogLine(_message.Message):
    __slots__ = ("task_id", "time", "stream", "line")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    LINE_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    time: float
    stream: str
    line: str
    def __init__(self, task_id: _Optional[str] = ..., time: _Optional[float] = ..., stream: _Optional[str] = ..., line: _Optional[str] = ...) -> None: ...

class PublishLogsMessage(_message.Message):
    __slots__ = ("session_id", "subscription_id", "lines", "caught_up", "err")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTION_ID_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    CAUGHT_UP_FIELD_NUMBER: _ClassVar[int]
    ERR_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    subscription_id: str
    lines: _containers.RepeatedCompositeFieldContainer[TaskLogLine]
    caught_up: bool
    err: str
    def __init__(self, session_id: _Optional[str] = ..., subscription_id: _Optional[str] = ..., lines: _Optional[_Iterable[_Union[TaskLogLine, _Mapping]]] = ..., caught_up: _Optional[bool] = ..., err: _Optional[str] = ...) -> None: ...

class PublishLogsResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
