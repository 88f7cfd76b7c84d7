"""The control API for backups: what `covey swarm backup` calls (docs/design.md, "Backups").

The store is copied at one applied Raft index, encoded as the Raft snapshots are
(formats.snapshot_of), sealed here with the caller's passphrase (covey/backupfile.py) and
streamed back in chunks: the state never leaves this manager unencrypted.
"""
import asyncio
import time
from collections.abc import AsyncIterator

from covey import backupfile, pki
from covey.errors import FailedPrecondition, InvalidArgument
from manager.controlapi.cluster import NO_UNLOCK_KEY
from manager.state import store as st
from manager.state.formats import snapshot_of
from proto import backup_pb2, control_pb2
from proto import objects_pb2 as pb

# Well under gRPC's 4 MB message limit; a sealed backup of 10,000 tasks is larger than that.
CHUNK_SIZE = 1 << 20


def seal(copy: st.StoreCopy, passphrase: str, created_at_ns: int,
         kdf: backupfile.ScryptParams = backupfile.DEFAULT_KDF) -> tuple[backup_pb2.BackupSummary, bytes]:
    """(summary, sealed file) of a copy of the store."""
    backup = backup_pb2.Backup(format_version=backupfile.CONTENTS_VERSION, raft_index=copy.index,
                               created_at_ns=created_at_ns, store=snapshot_of(copy.tables))
    sealed = backupfile.seal(backup, passphrase, kdf)
    return backupfile.summary_of(backup, len(sealed)), sealed


def unlock_key_of(copy: st.StoreCopy) -> str:
    """The unlock key in force at the copy's index, as users write it: what restores the backup."""
    clusters = [pb.Cluster.FromString(data) for data in copy.tables.get("cluster", {}).values()]
    if not clusters or not clusters[0].spec.autolock or not clusters[0].unlock_key:
        raise FailedPrecondition(NO_UNLOCK_KEY)
    return pki.format_unlock_key(clusters[0].unlock_key)


class BackupAPI:
    def __init__(self, store: st.Store, chunk_size: int = CHUNK_SIZE):
        self._store = store
        self._chunk_size = chunk_size

    async def backup(self, request: control_pb2.BackupRequest, context) -> AsyncIterator[control_pb2.BackupChunk]:
        if request.with_unlock_key == bool(request.passphrase):
            raise InvalidArgument("a backup is encrypted with a key derived from a passphrase, or from the "
                                  "swarm's unlock key when autolock is on: give one of the two")
        copy = await self._store.snapshot()
        passphrase = unlock_key_of(copy) if request.with_unlock_key else request.passphrase
        # Encoding thousands of objects and scrypt take a while: not on the event loop.
        summary, sealed = await asyncio.to_thread(seal, copy, passphrase, time.time_ns())
        yield control_pb2.BackupChunk(summary=summary)
        for offset in range(0, len(sealed), self._chunk_size):
            yield control_pb2.BackupChunk(data=sealed[offset:offset + self._chunk_size])
