from proto import objects_pb2 as _objects_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetRootCARequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetRootCAResponse(_message.Message):
    __slots__ = ("ca_cert_pem",)
    CA_CERT_PEM_FIELD_NUMBER: _ClassVar[int]
    ca_cert_pem: bytes
    def __init__(self, ca_cert_pem: _Optional[bytes] = ...) -> None: ...

class IssueNodeCertificateRequest(_message.Message):
    __slots__ = ("token", "csr_pem", "hostname", "advertise_addr")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    CSR_PEM_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    ADVERTISE_ADDR_FIELD_NUMBER: _ClassVar[int]
    token: str
    csr_pem: bytes
    hostname: str
    advertise_addr: str
    def __init__(self, token: _Optional[str] = ..., csr_pem: _Optional[bytes] = ..., hostname: _Optional[str] = ..., advertise_addr: _Optional[str] = ...) -> None: ...

class IssueNodeCertificateResponse(_message.Message):
    __slots__ = ("node_id", "role", "cert_pem", "ca_cert_pem", "managers", "raft_key", "raft_peers", "raft_addr")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CERT_PEM_FIELD_NUMBER: _ClassVar[int]
    CA_CERT_PEM_FIELD_NUMBER: _ClassVar[int]
    MANAGERS_FIELD_NUMBER: _ClassVar[int]
    RAFT_KEY_FIELD_NUMBER: _ClassVar[int]
    RAFT_PEERS_FIELD_NUMBER: _ClassVar[int]
    RAFT_ADDR_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    role: _objects_pb2.NodeRole
    cert_pem: bytes
    ca_cert_pem: bytes
    managers: _containers.RepeatedScalarFieldContainer[str]
    raft_key: bytes
    raft_peers: _containers.RepeatedScalarFieldContainer[str]
    raft_addr: str
    def __init__(self, node_id: _Optional[str] = ..., role: _Optional[_Union[_objects_pb2.NodeRole, str]] = ..., cert_pem: _Optional[bytes] = ..., ca_cert_pem: _Optional[bytes] = ..., managers: _Optional[_Iterable[str]] = ..., raft_key: _Optional[bytes] = ..., raft_peers: _Optional[_Iterable[str]] = ..., raft_addr: _Optional[str] = ...) -> None: ...

class RenewNodeCertificateRequest(_message.Message):
    __slots__ = ("csr_pem",)
    CSR_PEM_FIELD_NUMBER: _ClassVar[int]
    csr_pem: bytes
    def __init__(self, csr_pem: _Optional[bytes] = ...) -> None: ...

class RenewNodeCertificateResponse(_message.Message):
    __slots__ = ("cert_pem", "role", "raft_key", "raft_peers", "managers", "raft_addr", "api_addr", "ca_cert_pem")
    CERT_PEM_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    RAFT_KEY_FIELD_NUMBER: _ClassVar[int]
    RAFT_PEERS_FIELD_NUMBER: _ClassVar[int]
    MANAGERS_FIELD_NUMBER: _ClassVar[int]
    RAFT_ADDR_FIELD_NUMBER: _ClassVar[int]
    API_ADDR_FIELD_NUMBER: _ClassVar[int]
    CA_CERT_PEM_FIELD_NUMBER: _ClassVar[int]
    cert_pem: bytes
    role: _objects_pb2.NodeRole
    raft_key: bytes
    raft_peers: _containers.RepeatedScalarFieldContainer[str]
    managers: _containers.RepeatedScalarFieldContainer[str]
    raft_addr: str
    api_addr: str
    ca_cert_pem: bytes
    def __init__(self, cert_pem: _Optional[bytes] = ..., role: _Optional[_Union[_objects_pb2.NodeRole, str]] = ..., raft_key: _Optional[bytes] = ..., raft_peers: _Optional[_Iterable[str]] = ..., managers: _Optional[_Iterable[str]] = ..., raft_addr: _Optional[str] = ..., api_addr: _Optional[str] = ..., ca_cert_pem: _Optional[bytes] = ...) -> None: ...
