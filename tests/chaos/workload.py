"""The chaos suite's clients: concurrent processes, each with keys of its own, reading,
blind-writing node labels and compare-and-setting service labels through the control API
of the managers, every operation recorded with invocation and completion times and an
outcome (tests/chaos/linearizability.py reads the history).
"""
import itertools
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import grpc

from covey import errors
from proto import control_pb2, control_pb2_grpc
from proto import specs_pb2 as specs
from tests.chaos.linearizability import INFINITY, Op

CALL_DEADLINE = 4.0          # s: one API call; longer means "unknown outcome"
BACKOFF = 0.2                # s: after a failed call, before the client's next one
KEY_OPS = 200                # operations on one key before the client moves to a fresh one
INFO_PER_KEY = 3             # unknown outcomes before a client moves to a fresh key (keeps the search small)
CHANNEL_OPTIONS = [("grpc.initial_reconnect_backoff_ms", 100), ("grpc.max_reconnect_backoff_ms", 1000),
                   ("grpc.min_reconnect_backoff_ms", 100)]
# Certainly not applied: the manager refused it, or the call never reached a manager.
REFUSED = {grpc.StatusCode.ABORTED, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
           grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.ALREADY_EXISTS}


def error_kind(error: grpc.RpcError) -> str:
    """The code and the first words of the details: counted for the report."""
    return f"{error.code().name}: {' '.join((error.details() or '').split()[:6])}"


def outcome_of(error: grpc.RpcError) -> str:
    """fail (certainly not applied) or info (may have been). A manager's handler says which
    (covey-outcome metadata): the history then holds its claim to the checker's test. A call
    that no handler answered is taken apart by its code."""
    claimed = errors.outcome_of(error)
    if claimed is not None:
        return "fail" if claimed == errors.Outcome.NOT_APPLIED else "info"
    code, details = error.code(), error.details() or ""
    if code in REFUSED:
        return "fail"
    if code == grpc.StatusCode.UNAVAILABLE and "failed to connect" in details:
        return "fail"
    return "info"


def control(socket: str) -> control_pb2_grpc.ControlStub:
    return control_pb2_grpc.ControlStub(grpc.insecure_channel(f"unix://{socket}", options=CHANNEL_OPTIONS))


def create_service(stub: control_pb2_grpc.ControlStub, name: str) -> None:
    """A service with no replicas: its labels are the compare-and-set registers."""
    spec = specs.ServiceSpec(name=name)
    spec.task.container.image = "busybox:latest"
    spec.replicated.replicas = 0
    stub.CreateService(control_pb2.CreateServiceRequest(spec=spec), timeout=30)


@dataclass
class Stats:
    ok: int = 0
    fail: int = 0
    info: int = 0
    errors: Counter = field(default_factory=Counter)   # "CODE: details" of failed calls

    def add(self, outcome: str) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)


@dataclass(eq=False)   # threads are compared and hashed by identity
class Client(threading.Thread):
    """One process of the history: operations one at a time through one manager."""
    process: int
    socket: str        # writes (and compare-and-set's read) go through this manager
    node: str          # whose labels this client writes (its own keys)
    service: str       # whose labels it compare-and-sets
    history: list
    lock: threading.Lock
    stop: threading.Event
    max_ops: int
    read_sockets: tuple = ()   # plain reads go through any of these: a stale replica shows
    tag: str = ""      # sets this run's keys apart from earlier runs' on the same swarm
    seed: int = 0
    stats: Stats = field(default_factory=Stats)

    def __post_init__(self):
        threading.Thread.__init__(self, daemon=True, name=f"chaos-client-{self.process}")
        self.stub = control(self.socket)
        self.readers = [control(s) for s in self.read_sockets] or [self.stub]
        self.random = random.Random(self.seed)
        self.values = itertools.count(1)
        self.generation = {"n": 0, "s": 0}
        self.unknown = {"n": 0, "s": 0}
        self.done = {"n": 0, "s": 0}
        self.keys: dict[str, tuple[str, str]] = {}   # key -> ("node" | "service", whose labels)

    def key(self, kind: str) -> str:
        key = f"{self.tag}p{self.process}{kind}{self.generation[kind]}"
        self.keys[key] = ("node", self.node) if kind == "n" else ("service", self.service)
        return key

    def run(self) -> None:
        while not self.stop.is_set() and self.stats.ok + self.stats.fail + self.stats.info < self.max_ops:
            kind = self.random.choice("ns")
            outcome = self.node_op() if kind == "n" else self.service_op()
            self.stats.add(outcome)
            self.done[kind] += 1
            self.unknown[kind] += outcome == "info"
            if self.unknown[kind] >= INFO_PER_KEY or self.done[kind] >= KEY_OPS:
                self.generation[kind] += 1
                self.unknown[kind] = self.done[kind] = 0
            if outcome != "ok":
                self.stop.wait(BACKOFF)

    def record(self, key: str, kind: str, value, invoked: float, outcome: str) -> None:
        completed = time.monotonic() if outcome != "info" else INFINITY
        with self.lock:
            self.history.append(Op(key, kind, value, invoked, completed, outcome, self.process))

    def node_op(self) -> str:
        key = self.key("n")
        invoked = time.monotonic()
        if self.random.random() < 0.5:
            try:
                reader = self.random.choice(self.readers)
                node = reader.GetNode(control_pb2.GetNodeRequest(node=self.node), timeout=CALL_DEADLINE).node
            except grpc.RpcError as error:
                return self._read_failed(error)
            self.record(key, "read", node.spec.labels.get(key), invoked, "ok")
            return "ok"
        value = f"{self.process}.{next(self.values)}"
        request = control_pb2.UpdateNodeRequest(node=self.node, labels_add={key: value})
        try:
            self.stub.UpdateNode(request, timeout=CALL_DEADLINE)
            outcome = "ok"
        except grpc.RpcError as error:
            outcome = outcome_of(error)
            self.stats.errors[error_kind(error)] += 1
        self.record(key, "write", value, invoked, outcome)
        return outcome

    def service_op(self) -> str:
        """Read the service, then compare-and-set its label with the version read."""
        key = self.key("s")
        invoked = time.monotonic()
        try:
            service = self.stub.GetService(control_pb2.GetServiceRequest(service=self.service),
                                           timeout=CALL_DEADLINE).service
        except grpc.RpcError as error:
            return self._read_failed(error)
        old = service.spec.labels.get(key)
        self.record(key, "read", old, invoked, "ok")
        spec = specs.ServiceSpec()
        spec.CopyFrom(service.spec)
        new = f"{self.process}.{next(self.values)}"
        spec.labels[key] = new
        invoked = time.monotonic()
        try:
            self.stub.UpdateService(control_pb2.UpdateServiceRequest(
                service=service.id, spec=spec, expected_version=service.meta.version), timeout=CALL_DEADLINE)
            outcome = "ok"
        except grpc.RpcError as error:
            outcome = outcome_of(error)
            self.stats.errors[error_kind(error)] += 1
        self.record(key, "cas", (old, new), invoked, outcome)
        return outcome

    def _read_failed(self, error: grpc.RpcError) -> str:
        self.stats.errors[error_kind(error)] += 1
        return "fail" if outcome_of(error) == "fail" else "info"
