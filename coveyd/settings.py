"""Settings of a coveyd: every period and timeout, so that tests can shorten them.

    coveyd --set join_timeout=5s --set raft.election_min=0.2s ...
"""
from dataclasses import dataclass, field, fields

from covey.errors import InvalidArgument
from covey.units import parse_duration
from manager.state.store import RaftTimings
from worker.agent import AgentSettings

# Nodes heartbeat every second: a dead host is Down within 4 s, its tasks elsewhere within
# 5 s (manager/dispatcher/sessions.py says how the figures fit together).
DEFAULT_HEARTBEAT = "1s"


@dataclass
class Settings:
    join_timeout: float = 20.0          # reaching a manager and getting a certificate
    manager_ready_timeout: float = 30.0 # Raft electing a leader at start
    shutdown_timeout: float = 5.0
    log_gather_timeout: float = 10.0    # service logs: waiting for each node's backlog
    dns_timeout: float = 2.0            # the embedded DNS: waiting for each upstream resolver
    raft: RaftTimings = field(default_factory=RaftTimings)
    agent: AgentSettings = field(default_factory=AgentSettings)

    def apply(self, assignment: str) -> None:
        """Apply one NAME=DURATION, e.g. 'raft.election_min=200ms'."""
        name, sep, value = assignment.partition("=")
        if not sep:
            raise InvalidArgument(f"invalid setting {assignment!r}: use NAME=DURATION")
        target, _, attr = name.rpartition(".")
        obj = getattr(self, target) if target in ("raft", "agent") else (self if not target else None)
        names = {f.name for f in fields(obj)} if obj is not None else set()
        if attr not in names or attr in ("raft", "agent"):
            raise InvalidArgument(f"unknown setting {name!r}; known: {', '.join(self.names())}")
        setattr(obj, attr, parse_duration(value) / 1e9)

    def names(self) -> list[str]:
        own = [f.name for f in fields(self) if f.name not in ("raft", "agent")]
        return own + [f"raft.{f.name}" for f in fields(self.raft)] + [f"agent.{f.name}" for f in fields(self.agent)]
