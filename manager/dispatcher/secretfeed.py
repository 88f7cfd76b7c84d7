"""The secrets and configs the dispatcher sends a node with its assignments
(proto/dispatcher.proto, AssignmentsMessage.secrets / configs / removed_*).

A node gets exactly the secrets and configs that its unfinished assigned tasks use: each one
when the first such task reaches it, in the same message as that task (the agent stores them
before it looks at the tasks), and its removal when the last such task finishes or leaves the
node. One feed per assignments stream, kept from the tasks the stream sends: a change costs in
proportion to the tasks it touches. The data goes only over this stream (mutual TLS).

A task that finished keeps its container (and that container's own tmpfs copy) until it is
removed, but never starts again, so its node no longer needs the data.
"""
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from manager.state import store as st
from proto import dispatcher_pb2
from proto import objects_pb2 as pb

Ref = tuple[str, str]   # ("secret" | "config", ID)


def references(task: pb.Task) -> frozenset[Ref]:
    """The secrets and configs a task needs on its node: none once it has finished."""
    if task.status.state > pb.RUNNING:
        return frozenset()
    container = task.spec.container
    return frozenset([("secret", r.secret_id) for r in container.secrets if r.secret_id] +
                     [("config", r.config_id) for r in container.configs if r.config_id])


@dataclass
class SecretFeed:
    """One stream's share: which tasks use what, and what the node holds."""
    store: st.Store
    uses: dict[str, frozenset[Ref]] = field(default_factory=dict)   # task ID -> what it uses
    counts: Counter = field(default_factory=Counter)                # ref -> tasks using it
    held: set[Ref] = field(default_factory=set)                     # sent to the node, not removed

    def track(self, updated: Iterable[pb.Task], removed: Iterable[str]) -> None:
        """The tasks the stream is about to send (new or changed) and those it unassigns."""
        for task in updated:
            self._set(task.id, references(task))
        for task_id in removed:
            self._set(task_id, frozenset())

    def _set(self, task_id: str, refs: frozenset[Ref]) -> None:
        before = self.uses.pop(task_id, frozenset())
        self.counts.subtract(before)
        self.counts.update(refs)
        if refs:
            self.uses[task_id] = refs

    def add_to(self, message: dispatcher_pb2.AssignmentsMessage) -> None:
        """Put in the message what the node must get and what it must drop."""
        wanted = {ref for ref, count in self.counts.items() if count > 0}
        for kind, obj_id in sorted(wanted - self.held):
            if self._add(message, kind, obj_id):  # else removed meanwhile: the task fails to prepare
                self.held.add((kind, obj_id))
        for kind, obj_id in sorted(self.held - wanted):
            (message.removed_secrets if kind == "secret" else message.removed_configs).append(obj_id)
            self.held.discard((kind, obj_id))
        self.counts = +self.counts          # drop the zeros

    def _add(self, message: dispatcher_pb2.AssignmentsMessage, kind: str, obj_id: str) -> bool:
        if kind == "secret":
            secret = self.store.secrets.get(obj_id)
            if secret is not None:
                message.secrets.append(secret)
            return secret is not None
        config = self.store.configs.get(obj_id)
        if config is not None:
            message.configs.append(config)
        return config is not None
