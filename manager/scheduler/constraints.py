"""Placement constraints and preferences in Docker's grammar, parsed once and matched against nodes.

    node.id==ID  node.hostname!=web1  node.role==manager  node.labels.zone==a
    node.platform.os==linux  node.platform.arch!=arm64  engine.labels.storage==ssd

As Docker: keys (apart from a label's own key) and values compare case-insensitively, and a
node without the label has the empty value, so `==` fails and `!=` passes. Better than Docker:
errors name the bad expression, a role must be manager or worker, and architectures compare
by their canonical name (x86_64 is amd64, aarch64 is arm64).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from covey.errors import InvalidArgument
from proto import objects_pb2 as pb

# Key (lower case) -> the attribute's short name in explanations ("2 nodes have role=worker").
FIXED_KEYS = {"node.id": "id", "node.hostname": "hostname", "node.role": "role",
              "node.platform.os": "os", "node.platform.arch": "arch"}
LABEL_PREFIXES = ("node.labels.", "engine.labels.")
KEYS_HELP = ("node.id, node.hostname, node.role, node.labels.KEY, node.platform.os, "
             "node.platform.arch or engine.labels.KEY")
_ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armv7l": "arm",
                 "armhf": "arm", "i386": "386", "i686": "386"}
_OPERATOR = re.compile(r"==|!=")
_BAD_VALUE = re.compile(r"[=!<>~]")  # operators, present or future, never belong in a value
_BAD_LABEL = re.compile(r"\s")


def normalize_arch(arch: str) -> str:
    arch = arch.strip().lower()
    return _ARCH_ALIASES.get(arch, arch)


def label_value(node: pb.Node, prefix: str, label: str) -> str | None:
    """A node's (or its engine's) label, None when it has no such label."""
    labels = node.spec.labels if prefix == "node.labels." else node.description.engine_labels
    return labels.get(label)


@dataclass(frozen=True)
class Constraint:
    text: str    # the expression as written (trimmed)
    key: str     # "node.role", or for labels the prefix: "node.labels." / "engine.labels."
    label: str   # the label's own key (case-sensitive); "" for fixed keys
    equal: bool  # True for ==, False for !=
    value: str   # compared case-insensitively

    @property
    def attr(self) -> str:
        """The attribute in explanations: "zone", "engine label storage", "role"."""
        if self.key == "node.labels.":
            return self.label
        if self.key == "engine.labels.":
            return f"engine label {self.label}"
        return FIXED_KEYS[self.key]

    def node_value(self, node: pb.Node) -> str | None:
        """What the node has for this key; None when a label is missing."""
        if self.label:
            return label_value(node, self.key, self.label)
        if self.key == "node.id":
            return node.id
        if self.key == "node.hostname":
            return node.description.hostname
        if self.key == "node.role":
            return pb.NodeRole.Name(node.role).lower()
        if self.key == "node.platform.os":
            return node.description.platform.os
        return node.description.platform.architecture

    def matches(self, node: pb.Node) -> bool:
        return self.matches_value(self.node_value(node))

    def matches_value(self, have: str | None) -> bool:
        return _fold(self.key, have or "") == _fold(self.key, self.value) if self.equal \
            else _fold(self.key, have or "") != _fold(self.key, self.value)


def _fold(key: str, value: str) -> str:
    return normalize_arch(value) if key == "node.platform.arch" else value.lower()


def _invalid(text: str, why: str) -> InvalidArgument:
    return InvalidArgument(f"invalid constraint {text!r}: {why}")


@lru_cache(maxsize=4096)
def parse_constraint(text: str) -> Constraint:
    """One expression, or InvalidArgument naming it and what is wrong."""
    expr = text.strip()
    match = _OPERATOR.search(expr)
    if not match:
        raise _invalid(text, "expected an operator, == or != (e.g. node.labels.zone==a)")
    raw_key, value = expr[:match.start()].strip(), expr[match.end():].strip()
    if not raw_key:
        raise _invalid(text, "missing key before the operator")
    if not value:
        raise _invalid(text, "empty value after the operator")
    if _BAD_VALUE.search(value):
        raise _invalid(text, f"value {value!r} may not contain =, !, <, > or ~ (one operator per constraint)")
    key, label = _key(text, raw_key)
    if key == "node.role" and value.lower() not in ("manager", "worker"):
        raise _invalid(text, f"node.role is manager or worker, not {value!r}")
    return Constraint(expr, key, label, match.group() == "==", value)


def _key(text: str, raw_key: str) -> tuple[str, str]:
    lower = raw_key.lower()
    if lower in FIXED_KEYS:
        return lower, ""
    for prefix in LABEL_PREFIXES:
        if lower.startswith(prefix):
            label = raw_key[len(prefix):]
            if not label or _BAD_LABEL.search(label):
                raise _invalid(text, f"{raw_key!r} needs a label key without spaces, e.g. {prefix}zone")
            return prefix, label
    raise _invalid(text, f"unknown key {raw_key!r}; use {KEYS_HELP}")


def parse_constraints(texts) -> tuple[Constraint, ...]:
    """Validate a whole list up front (the control API does at `service create`)."""
    return tuple(parse_constraint(t) for t in texts)


@dataclass(frozen=True)
class Preference:
    text: str
    prefix: str  # "node.labels." or "engine.labels."
    label: str

    def node_value(self, node: pb.Node) -> str | None:
        return label_value(node, self.prefix, self.label)


@lru_cache(maxsize=1024)
def parse_preference(text: str) -> Preference:
    """`spread=node.labels.KEY` (or the bare descriptor, as Placement.preferences stores it)."""
    descriptor = text.strip()
    kind, sep, rest = descriptor.partition("=")
    if sep:
        if kind.strip().lower() != "spread":
            raise InvalidArgument(f"invalid placement preference {text!r}: only spread is supported")
        descriptor = rest.strip()
    lower = descriptor.lower()
    for prefix in LABEL_PREFIXES:
        label = descriptor[len(prefix):]
        if lower.startswith(prefix) and label and not _BAD_LABEL.search(label):
            return Preference(descriptor, prefix, label)
    raise InvalidArgument(f"invalid placement preference {text!r}: use spread=node.labels.KEY "
                          "or spread=engine.labels.KEY")


def parse_preferences(texts) -> tuple[Preference, ...]:
    return tuple(parse_preference(t) for t in texts)
