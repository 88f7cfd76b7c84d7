"""Hostname templates and task names (covey/hostname.py), shared by the managers and the worker."""
import pytest

from covey.hostname import TaskFacts, render_hostname, task_name
from proto import objects_pb2 as pb
from worker.tasks import task_name as worker_task_name

REPLICA = TaskFacts(service_name="shop_web", service_id="svc1", slot=3, task_id="t" * 25, node_id="n" * 25,
                    node_hostname="host-a")
GLOBAL = TaskFacts(service_name="agent", service_id="svc2", slot=0, task_id="0123456789abcdef", node_id="node9",
                   node_hostname="host-b")


@pytest.mark.parametrize("template, expected", [
    ("{{.Service.Name}}", "shop_web"),
    ("{{.Service.ID}}", "svc1"),
    ("{{.Task.Slot}}", "3"),
    ("{{.Task.ID}}", "t" * 25),
    ("{{.Task.Name}}", f"shop_web.3.{'t' * 25}"),
    ("{{.Node.ID}}", "n" * 25),
    ("{{.Node.Hostname}}", "host-a"),
    ("{{ .Service.Name }}-{{.Task.Slot}}.{{.Node.Hostname}}", "shop_web-3.host-a"),
    ("plain", "plain"),
])
def test_every_placeholder_renders(template, expected):
    assert render_hostname(template, REPLICA) == expected


def test_a_global_task_has_its_node_in_place_of_the_slot():
    assert render_hostname("{{.Task.Slot}}", GLOBAL) == "node9"
    assert task_name(GLOBAL) == "agent.node9.0123456789abcdef"


def test_an_empty_template_is_the_short_container_id():
    assert render_hostname("", GLOBAL) == "0123456789ab"


def test_an_unknown_placeholder_is_named():
    with pytest.raises(ValueError, match=r"unknown placeholder \{\{\.Task\.Nope\}\}"):
        render_hostname("x-{{.Task.Nope}}", REPLICA)


@pytest.mark.parametrize("facts", [REPLICA, GLOBAL])
def test_the_task_name_is_the_workers(facts):
    task = pb.Task(id=facts.task_id, service_name=facts.service_name, slot=facts.slot, node_id=facts.node_id)
    assert task_name(facts) == worker_task_name(task)
