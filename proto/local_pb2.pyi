from proto import backup_pb2 as _backup_pb2
from proto import objects_pb2 as _objects_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SwarmInitRequest(_message.Message):
    __slots__ = ("advertise_addr", "listen_addr", "heartbeat_period_ns", "force_new_cluster", "cert_expiry_ns", "default_addr_pools", "default_addr_pool_mask_length", "data_path_port", "autolock")
    ADVERTISE_ADDR_FIELD_NUMBER: _ClassVar[int]
    LISTEN_ADDR_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_PERIOD_NS_FIELD_NUMBER: _ClassVar[int]
    FORCE_NEW_CLUSTER_FIELD_NUMBER: _ClassVar[int]
    CERT_EXPIRY_NS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_ADDR_POOLS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_ADDR_POOL_MASK_LENGTH_FIELD_NUMBER: _ClassVar[int]
    DATA_PATH_PORT_FIELD_NUMBER: _ClassVar[int]
    AUTOLOCK_FIELD_NUMBER: _ClassVar[int]
    advertise_addr: str
    listen_addr: str
    heartbeat_period_ns: int
    force_new_cluster: bool
    cert_expiry_ns: int
    default_addr_pools: _containers.RepeatedScalarFieldContainer[str]
    default_addr_pool_mask_length: int
    data_path_port: int
    autolock: bool
    def __init__(self, advertise_addr: _Optional[str] = ..., listen_addr: _Optional[str] = ..., heartbeat_period_ns: _Optional[int] = ..., force_new_cluster: _Optional[bool] = ..., cert_expiry_ns: _Optional[int] = ..., default_addr_pools: _Optional[_Iterable[str]] = ..., default_addr_pool_mask_length: _Optional[int] = ..., data_path_port: _Optional[int] = ..., autolock: _Optional[bool] = ...) -> None: ...

class SwarmInitResponse(_message.Message):
    __slots__ = ("node_id", "cluster_id", "worker_token", "manager_addr", "unlock_key")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_TOKEN_FIELD_NUMBER: _ClassVar[int]
    MANAGER_ADDR_FIELD_NUMBER: _ClassVar[int]
    UNLOCK_KEY_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    cluster_id: str
    worker_token: str
    manager_addr: str
    unlock_key: str
    def __init__(self, node_id: _Optional[str] = ..., cluster_id: _Optional[str] = ..., worker_token: _Optional[str] = ..., manager_addr: _Optional[str] = ..., unlock_key: _Optional[str] = ...) -> None: ...

class SwarmJoinRequest(_message.Message):
    __slots__ = ("token", "remote_addr", "advertise_addr", "listen_addr")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    REMOTE_ADDR_FIELD_NUMBER: _ClassVar[int]
    ADVERTISE_ADDR_FIELD_NUMBER: _ClassVar[int]
    LISTEN_ADDR_FIELD_NUMBER: _ClassVar[int]
    token: str
    remote_addr: str
    advertise_addr: str
    listen_addr: str
    def __init__(self, token: _Optional[str] = ..., remote_addr: _Optional[str] = ..., advertise_addr: _Optional[str] = ..., listen_addr: _Optional[str] = ...) -> None: ...

class SwarmJoinResponse(_message.Message):
    __slots__ = ("node_id", "role")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    role: _objects_pb2.NodeRole
    def __init__(self, node_id: _Optional[str] = ..., role: _Optional[_Union[_objects_pb2.NodeRole, str]] = ...) -> None: ...

class SwarmUnlockRequest(_message.Message):
    __slots__ = ("unlock_key",)
    UNLOCK_KEY_FIELD_NUMBER: _ClassVar[int]
    unlock_key: str
    def __init__(self, unlock_key: _Optional[str] = ...) -> None: ...

class SwarmUnlockResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SwarmLeaveRequest(_message.Message):
    __slots__ = ("force",)
    FORCE_FIELD_NUMBER: _ClassVar[int]
    force: bool
    def __init__(self, force: _Optional[bool] = ...) -> None: ...

class SwarmLeaveResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class InfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class InfoResponse(_message.Message):
    __slots__ = ("node_id", "cluster_id", "role", "hostname", "managers", "engine_version")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    MANAGERS_FIELD_NUMBER: _ClassVar[int]
    ENGINE_VERSION_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    cluster_id: str
    role: _objects_pb2.NodeRole
    hostname: str
    managers: _containers.RepeatedScalarFieldContainer[str]
    engine_version: str
    def __init__(self, node_id: _Optional[str] = ..., cluster_id: _Optional[str] = ..., role: _Optional[_Union[_objects_pb2.NodeRole, str]] = ..., hostname: _Optional[str] = ..., managers: _Optional[_Iterable[str]] = ..., engine_version: _Optional[str] = ...) -> None: ...

class ContainerSummary(_message.Message):
    __slots__ = ("name", "id", "image", "status", "created_at", "started_at", "finished_at", "exited", "exit_code", "oom_killed", "health", "command")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    EXITED_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    OOM_KILLED_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    name: str
    id: str
    image: str
    status: str
    created_at: float
    started_at: float
    finished_at: float
    exited: bool
    exit_code: int
    oom_killed: bool
    health: str
    command: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., id: _Optional[str] = ..., image: _Optional[str] = ..., status: _Optional[str] = ..., created_at: _Optional[float] = ..., started_at: _Optional[float] = ..., finished_at: _Optional[float] = ..., exited: _Optional[bool] = ..., exit_code: _Optional[int] = ..., oom_killed: _Optional[bool] = ..., health: _Optional[str] = ..., command: _Optional[_Iterable[str]] = ...) -> None: ...

class ListContainersRequest(_message.Message):
    __slots__ = ("all",)
    ALL_FIELD_NUMBER: _ClassVar[int]
    all: bool
    def __init__(self, all: _Optional[bool] = ...) -> None: ...

class ListContainersResponse(_message.Message):
    __slots__ = ("containers",)
    CONTAINERS_FIELD_NUMBER: _ClassVar[int]
    containers: _containers.RepeatedCompositeFieldContainer[ContainerSummary]
    def __init__(self, containers: _Optional[_Iterable[_Union[ContainerSummary, _Mapping]]] = ...) -> None: ...

class InspectContainerRequest(_message.Message):
    __slots__ = ("container",)
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    container: str
    def __init__(self, container: _Optional[str] = ...) -> None: ...

class InspectContainerResponse(_message.Message):
    __slots__ = ("json",)
    JSON_FIELD_NUMBER: _ClassVar[int]
    json: str
    def __init__(self, json: _Optional[str] = ...) -> None: ...

class ContainerLogsRequest(_message.Message):
    __slots__ = ("container", "follow", "tail", "since")
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    TAIL_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    container: str
    follow: bool
    tail: int
    since: float
    def __init__(self, container: _Optional[str] = ..., follow: _Optional[bool] = ..., tail: _Optional[int] = ..., since: _Optional[float] = ...) -> None: ...

class LogLine(_message.Message):
    __slots__ = ("time", "stream", "line")
    TIME_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    LINE_FIELD_NUMBER: _ClassVar[int]
    time: float
    stream: str
    line: str
    def __init__(self, time: _Optional[float] = ..., stream: _Optional[str] = ..., line: _Optional[str] = ...) -> None: ...

class ExecStart(_message.Message):
    __slots__ = ("container", "command", "env", "user", "workdir", "stdin", "tty", "size")
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    WORKDIR_FIELD_NUMBER: _ClassVar[int]
    STDIN_FIELD_NUMBER: _ClassVar[int]
    TTY_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    container: str
    command: _containers.RepeatedScalarFieldContainer[str]
    env: _containers.RepeatedScalarFieldContainer[str]
    user: str
    workdir: str
    stdin: bool
    tty: bool
    size: TerminalSize
    def __init__(self, container: _Optional[str] = ..., command: _Optional[_Iterable[str]] = ..., env: _Optional[_Iterable[str]] = ..., user: _Optional[str] = ..., workdir: _Optional[str] = ..., stdin: _Optional[bool] = ..., tty: _Optional[bool] = ..., size: _Optional[_Union[TerminalSize, _Mapping]] = ...) -> None: ...

class TerminalSize(_message.Message):
    __slots__ = ("rows", "cols")
    ROWS_FIELD_NUMBER: _ClassVar[int]
    COLS_FIELD_NUMBER: _ClassVar[int]
    rows: int
    cols: int
    def __init__(self, rows: _Optional[int] = ..., cols: _Optional[int] = ...) -> None: ...

class ExecInput(_message.Message):
    __slots__ = ("start", "stdin", "resize")
    START_FIELD_NUMBER: _ClassVar[int]
    STDIN_FIELD_NUMBER: _ClassVar[int]
    RESIZE_FIELD_NUMBER: _ClassVar[int]
    start: ExecStart
    stdin: bytes
    resize: TerminalSize
    def __init__(self, start: _Optional[_Union[ExecStart, _Mapping]] = ..., stdin: _Optional[bytes] = ..., resize: _Optional[_Union[TerminalSize, _Mapping]] = ...) -> None: ...

class ExecOutput(_message.Message):
    __slots__ = ("stdout", "stderr", "exit_code")
    STDOUT_FIELD_NUMBER: _ClassVar[int]
    STDERR_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    stdout: bytes
    stderr: bytes
    exit_code: int
    def __init__(self, stdout: _Optional[bytes] = ..., stderr: _Optional[bytes] = ..., exit_code: _Optional[int] = ...) -> None: ...

class SwarmRestoreRequest(_message.Message):
    __slots__ = ("data", "passphrase", "advertise_addr", "listen_addr")
    DATA_FIELD_NUMBER: _ClassVar[int]
    PASSPHRASE_FIELD_NUMBER: _ClassVar[int]
    ADVERTISE_ADDR_FIELD_NUMBER: _ClassVar[int]
    LISTEN_ADDR_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    passphrase: str
    advertise_addr: str
    listen_addr: str
    def __init__(self, data: _Optional[bytes] = ..., passphrase: _Optional[str] = ..., advertise_addr: _Optional[str] = ..., listen_addr: _Optional[str] = ...) -> None: ...

class SwarmRestoreResponse(_message.Message):
    __slots__ = ("node_id", "cluster_id", "manager_addr", "restored", "removed_managers")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    MANAGER_ADDR_FIELD_NUMBER: _ClassVar[int]
    RESTORED_FIELD_NUMBER: _ClassVar[int]
    REMOVED_MANAGERS_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    cluster_id: str
    manager_addr: str
    restored: _backup_pb2.BackupSummary
    removed_managers: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, node_id: _Optional[str] = ..., cluster_id: _Optional[str] = ..., manager_addr: _Optional[str] = ..., restored: _Optional[_Union[_backup_pb2.BackupSummary, _Mapping]] = ..., removed_managers: _Optional[_Iterable[str]] = ...) -> None: ...

class LocalVolume(_message.Message):
    __slots__ = ("name", "driver", "mountpoint", "labels", "created_at", "used_by")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    DRIVER_FIELD_NUMBER: _ClassVar[int]
    MOUNTPOINT_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    USED_BY_FIELD_NUMBER: _ClassVar[int]
    name: str
    driver: str
    mountpoint: str
    labels: _containers.ScalarMap[str, str]
    created_at: float
    used_by: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., driver: _Optional[str] = ..., mountpoint: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., created_at: _Optional[float] = ..., used_by: _Optional[_Iterable[str]] = ...) -> None: ...

class CreateVolumeRequest(_message.Message):
    __slots__ = ("name", "labels")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    name: str
    labels: _containers.ScalarMap[str, str]
    def __init__(self, name: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ...) -> None: ...

class CreateVolumeResponse(_message.Message):
    __slots__ = ("volume",)
    VOLUME_FIELD_NUMBER: _ClassVar[int]
    volume: LocalVolume
    def __init__(self, volume: _Optional[_Union[LocalVolume, _Mapping]] = ...) -> None: ...

class ListVolumesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListVolumesResponse(_message.Message):
    __slots__ = ("volumes",)
    VOLUMES_FIELD_NUMBER: _ClassVar[int]
    volumes: _containers.RepeatedCompositeFieldContainer[LocalVolume]
    def __init__(self, volumes: _Optional[_Iterable[_Union[LocalVolume, _Mapping]]] = ...) -> None: ...

class InspectVolumeRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class InspectVolumeResponse(_message.Message):
    __slots__ = ("volume",)
    VOLUME_FIELD_NUMBER: _ClassVar[int]
    volume: LocalVolume
    def __init__(self, volume: _Optional[_Union[LocalVolume, _Mapping]] = ...) -> None: ...

class RemoveVolumeRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class RemoveVolumeResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PruneVolumesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PruneVolumesResponse(_message.Message):
    __slots__ = ("removed", "reclaimed_bytes")
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    RECLAIMED_BYTES_FIELD_NUMBER: _ClassVar[int]
    removed: _containers.RepeatedScalarFieldContainer[str]
    reclaimed_bytes: int
    def __init__(self, removed: _Optional[_Iterable[str]] = ..., reclaimed_bytes: _Optional[int] = ...) -> None: ...

class NetworkContainer(_message.Message):
    __slots__ = ("task_id", "name", "container_id", "interface", "address", "mac")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_ID_FIELD_NUMBER: _ClassVar[int]
    INTERFACE_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    MAC_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    name: str
    container_id: str
    interface: str
    address: str
    mac: str
    def __init__(self, task_id: _Optional[str] = ..., name: _Optional[str] = ..., container_id: _Optional[str] = ..., interface: _Optional[str] = ..., address: _Optional[str] = ..., mac: _Optional[str] = ...) -> None: ...

class NetworkPeer(_message.Message):
    __slots__ = ("name", "address", "mac", "host")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    MAC_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    name: str
    address: str
    mac: str
    host: str
    def __init__(self, name: _Optional[str] = ..., address: _Optional[str] = ..., mac: _Optional[str] = ..., host: _Optional[str] = ...) -> None: ...

class MeshPort(_message.Message):
    __slots__ = ("protocol", "published", "target", "mode", "backends")
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    BACKENDS_FIELD_NUMBER: _ClassVar[int]
    protocol: str
    published: int
    target: int
    mode: str
    backends: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, protocol: _Optional[str] = ..., published: _Optional[int] = ..., target: _Optional[int] = ..., mode: _Optional[str] = ..., backends: _Optional[_Iterable[str]] = ...) -> None: ...

class LocalNetwork(_message.Message):
    __slots__ = ("network", "sandbox", "containers", "peers", "ingress_endpoint", "ports", "programmed_peers", "programmed")
    class ProgrammedPeersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    SANDBOX_FIELD_NUMBER: _ClassVar[int]
    CONTAINERS_FIELD_NUMBER: _ClassVar[int]
    PEERS_FIELD_NUMBER: _ClassVar[int]
    INGRESS_ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    PORTS_FIELD_NUMBER: _ClassVar[int]
    PROGRAMMED_PEERS_FIELD_NUMBER: _ClassVar[int]
    PROGRAMMED_FIELD_NUMBER: _ClassVar[int]
    network: _objects_pb2.Network
    sandbox: str
    containers: _containers.RepeatedCompositeFieldContainer[NetworkContainer]
    peers: _containers.RepeatedCompositeFieldContainer[NetworkPeer]
    ingress_endpoint: NetworkContainer
    ports: _containers.RepeatedCompositeFieldContainer[MeshPort]
    programmed_peers: _containers.ScalarMap[str, str]
    programmed: bool
    def __init__(self, network: _Optional[_Union[_objects_pb2.Network, _Mapping]] = ..., sandbox: _Optional[str] = ..., containers: _Optional[_Iterable[_Union[NetworkContainer, _Mapping]]] = ..., peers: _Optional[_Iterable[_Union[NetworkPeer, _Mapping]]] = ..., ingress_endpoint: _Optional[_Union[NetworkContainer, _Mapping]] = ..., ports: _Optional[_Iterable[_Union[MeshPort, _Mapping]]] = ..., programmed_peers: _Optional[_Mapping[str, str]] = ..., programmed: _Optional[bool] = ...) -> None: ...

class InspectLocalNetworkRequest(_message.Message):
    __slots__ = ("network",)
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    network: str
    def __init__(self, network: _Optional[str] = ...) -> None: ...

class InspectLocalNetworkResponse(_message.Message):
    __slots__ = ("network",)
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    network: LocalNetwork
    def __init__(self, network: _Optional[_Union[LocalNetwork, _Mapping]] = ...) -> None: ...
