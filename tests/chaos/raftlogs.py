"""Every manager's committed Raft log, read from its journal file, must be the same: at
each index two managers both hold as committed, the same term and the same command.

The journal is sealed with the manager's own at-rest key, kept in its data directory
(coveyd/nodestate.py; the chaos swarm is not autolocked). Reading it while coveyd runs is
safe: read_journal drops a last record that is still being written, and a compaction
replaces the file whole.
"""
from dataclasses import dataclass
from itertools import combinations

from coveyd.nodestate import NodeState
from deploy.lab import Host
from manager.state.raft.journal import read_journal
from manager.state.raft.safety import JOURNAL_NAME


@dataclass
class CommittedLog:
    host: str
    entries: dict[int, tuple[int, bytes]]     # index -> (term, command), committed only


def committed_log(host: Host) -> CommittedLog:
    key = NodeState(host.data_dir).at_rest_key()
    contents = read_journal(str(host.data_dir / "raft" / JOURNAL_NAME), key)
    return CommittedLog(host.name, {idx: (term, command) for command, idx, term in contents.entries
                                    if idx <= contents.commit})


def compare(logs: list[CommittedLog]) -> tuple[int, list[str]]:
    """(indices compared over all pairs, the disagreements found)."""
    compared, disagreements = 0, []
    for a, b in combinations(logs, 2):
        for idx in sorted(a.entries.keys() & b.entries.keys()):
            compared += 1
            if a.entries[idx] != b.entries[idx]:
                disagreements.append(f"index {idx}: {a.host} has term {a.entries[idx][0]}, "
                                     f"{b.host} has term {b.entries[idx][0]}"
                                     + (" (other command)" if a.entries[idx][0] == b.entries[idx][0] else ""))
    return compared, disagreements
