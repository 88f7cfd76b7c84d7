"""Constraint and preference parsing (Docker's grammar, clearer errors) and matching."""
import pytest

from covey.errors import InvalidArgument
from manager.scheduler.constraints import parse_constraint, parse_constraints, parse_preference
from proto import objects_pb2 as pb
from tests.support import builders


def node(hostname="web1", os="linux", arch="x86_64", **kw):
    return builders.node("abc123", hostname=hostname, os=os, arch=arch, **kw)


@pytest.mark.parametrize("text, key, label, equal, value", [
    ("node.labels.zone==a", "node.labels.", "zone", True, "a"),
    ("  node.labels.zone  !=  a b ", "node.labels.", "zone", False, "a b"),
    ("NODE.ROLE==Manager", "node.role", "", True, "Manager"),
    ("engine.labels.Storage==ssd", "engine.labels.", "Storage", True, "ssd"),
    ("node.platform.arch!=arm64", "node.platform.arch", "", False, "arm64"),
    ("node.hostname==web-1.example.com", "node.hostname", "", True, "web-1.example.com"),
])
def test_parse(text, key, label, equal, value):
    c = parse_constraint(text)
    assert (c.key, c.label, c.equal, c.value, c.text) == (key, label, equal, value, text.strip())


@pytest.mark.parametrize("text, why", [
    ("node.labels.zone=a", "expected an operator, == or != (e.g. node.labels.zone==a)"),
    ("node.labels.zone", "expected an operator"),
    ("node.color==red", "unknown key 'node.color'; use node.id, node.hostname, node.role"),
    ("==a", "missing key before the operator"),
    ("node.labels.zone==", "empty value after the operator"),
    ("node.labels.zone==   ", "empty value after the operator"),
    ("node.labels.==a", "'node.labels.' needs a label key without spaces, e.g. node.labels.zone"),
    ("node.labels.my zone==a", "needs a label key without spaces"),
    ("node.role==boss", "node.role is manager or worker, not 'boss'"),
    ("node.labels.zone==a==b", "value 'a==b' may not contain =, !, <, > or ~"),
    ("node.labels.zone>=3", "expected an operator"),
])
def test_parse_errors_name_the_expression(text, why):
    with pytest.raises(InvalidArgument) as err:
        parse_constraint(text)
    assert str(err.value).startswith(f"invalid constraint {text!r}: ")
    assert why in str(err.value)


def test_parse_constraints_reports_the_first_bad_one():
    assert len(parse_constraints(["node.role==worker", "node.labels.a!=b"])) == 2
    with pytest.raises(InvalidArgument, match="invalid constraint 'node.rol==worker'"):
        parse_constraints(["node.role==worker", "node.rol==worker", "bad"])


def test_missing_label_is_empty_as_docker():
    n = node(labels={"zone": "a"})
    assert not parse_constraint("node.labels.ssd==true").matches(n)
    assert parse_constraint("node.labels.ssd!=true").matches(n)
    assert not parse_constraint("engine.labels.ssd==true").matches(n)
    assert parse_constraint("engine.labels.ssd!=true").matches(n)


def test_values_fold_case_label_keys_do_not():
    n = node(labels={"Zone": "East"}, role=pb.MANAGER, hostname="Web1")
    assert parse_constraint("node.labels.Zone==east").matches(n)
    assert not parse_constraint("node.labels.zone==east").matches(n)
    assert parse_constraint("node.role==MANAGER").matches(n)
    assert parse_constraint("Node.Hostname==web1").matches(n)
    assert parse_constraint("node.hostname!=web2").matches(n)


def test_fixed_keys():
    n = node(engine={"storage": "ssd"})
    assert parse_constraint("node.id==ABC123").matches(n)
    assert parse_constraint("node.role==worker").matches(n)
    assert parse_constraint("node.platform.os==Linux").matches(n)
    assert parse_constraint("engine.labels.storage==ssd").matches(n)
    assert not parse_constraint("node.platform.os!=linux").matches(n)


def test_architectures_compare_canonically():
    assert parse_constraint("node.platform.arch==amd64").matches(node(arch="x86_64"))
    assert parse_constraint("node.platform.arch==aarch64").matches(node(arch="arm64"))
    assert not parse_constraint("node.platform.arch==arm64").matches(node(arch="x86_64"))


@pytest.mark.parametrize("text, prefix, label", [
    ("spread=node.labels.datacenter", "node.labels.", "datacenter"),
    ("node.labels.rack", "node.labels.", "rack"),
    (" spread = engine.labels.zone ", "engine.labels.", "zone"),
])
def test_preferences(text, prefix, label):
    p = parse_preference(text)
    assert (p.prefix, p.label) == (prefix, label)


@pytest.mark.parametrize("text", ["pack=node.labels.dc", "spread=node.hostname", "spread=node.labels.", ""])
def test_preference_errors(text):
    with pytest.raises(InvalidArgument, match=f"invalid placement preference {text!r}"):
        parse_preference(text)
