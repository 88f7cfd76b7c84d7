"""The store's formats in Raft: entries (StoreBatch) and snapshots (StoreSnapshot).

Both carry typed objects (a oneof per action, a list per table) and FORMAT_VERSION.
Format 1 (table name + object bytes) is migrated when read, so an older data dir loads;
a newer format is refused, as this manager cannot know what it means. Everything here
is pure: apply calls decode_batch on every replica.
"""
from proto import objects_pb2 as pb
from proto import store_pb2

FORMAT_VERSION = 2
StoreObject = pb.Cluster | pb.Node | pb.Service | pb.Task | pb.Network | pb.Stack | pb.Secret | pb.Config
TABLES: dict[str, type[StoreObject]] = {"cluster": pb.Cluster, "node": pb.Node, "service": pb.Service,
                                        "task": pb.Task, "network": pb.Network, "stack": pb.Stack,
                                        "secret": pb.Secret, "config": pb.Config}
NAMES: dict[type, str] = {cls: name for name, cls in TABLES.items()}
_DELETE = store_pb2.StoreAction.DELETE


class FormatError(ValueError):
    pass


def decode_batch(data: bytes) -> store_pb2.StoreBatch:
    """One Raft entry of the store, in the current format."""
    batch = store_pb2.StoreBatch.FromString(data)
    if batch.format_version == FORMAT_VERSION:
        return batch
    if batch.format_version == 0:  # format 1 had no version field
        return _batch_from_v1(store_pb2.StoreBatchV1.FromString(data))
    raise FormatError(newer("store entry", batch.format_version))


def _batch_from_v1(old: store_pb2.StoreBatchV1) -> store_pb2.StoreBatch:
    batch = store_pb2.StoreBatch(format_version=FORMAT_VERSION)
    for action in old.actions:
        _known(action.table)
        new = batch.actions.add(kind=action.kind, expected_version=action.expected_version)
        obj = getattr(new, action.table)
        if action.kind == _DELETE:
            obj.id = action.id
        else:
            obj.MergeFromString(action.object)
    return batch


def snapshot_of(tables: dict[str, dict[str, bytes]]) -> store_pb2.StoreSnapshot:
    """The tables (name -> id -> serialized object) as a typed StoreSnapshot."""
    snap = store_pb2.StoreSnapshot(format_version=FORMAT_VERSION)
    for name in sorted(tables):
        _known(name)
        objects = getattr(snap, name + "s")
        for _, data in sorted(tables[name].items()):
            objects.add().MergeFromString(data)
    return snap


def tables_of(snap: store_pb2.StoreSnapshot) -> dict[str, dict[str, bytes]]:
    """A StoreSnapshot as tables (name -> id -> serialized object), every table present."""
    if snap.format_version != FORMAT_VERSION:
        raise FormatError(newer("store snapshot", snap.format_version))
    return {name: {obj.id: obj.SerializeToString(deterministic=True) for obj in getattr(snap, name + "s")}
            for name in TABLES}


def newer(what: str, version: int) -> str:
    return (f"{what} format {version} is not one this manager reads (formats 1 to {FORMAT_VERSION}): "
            "it was written by a newer coveyd; upgrade coveyd on this manager")


def _known(table: str) -> None:
    if table not in TABLES:
        raise FormatError(f"a format 1 store entry names an unknown table {table!r}")
