"""`covey stack deploy`: image pinning per --resolve-image (covey/imagepin.py, which the
manager runs), Docker's lines, and the parser."""
from covey import imagepin
from covey.cli.main import build_parser
from covey.cli.stack import DRY_VERB, VERB, print_changes, stack_tasks
from proto import control_pb2
from proto import objects_pb2 as pb
from proto import specs_pb2 as specs
from tests.support.builders import task

Change = control_pb2.StackChange
DIGEST = "sha256:" + "ab" * 32
MOVED = "sha256:" + "cd" * 32


def spec(name: str, image: str) -> specs.ServiceSpec:
    s = specs.ServiceSpec(name=name)
    s.task.container.image = image
    s.labels[imagepin.IMAGE_LABEL] = image
    return s


class Registry:
    """Answers digests from a table, counting the questions."""
    def __init__(self, digests: dict[str, str]):
        self.digests, self.asked = digests, []

    def __call__(self, image: str) -> str:
        self.asked.append(image)
        if image not in self.digests:
            raise RuntimeError("manifest unknown")
        return self.digests[image]


def test_always_pins_every_tag_once_per_image_and_warns_for_what_it_cannot_reach():
    services = [spec("s_a", "reg:5000/app:1"), spec("s_b", "reg:5000/app:1"), spec("s_c", "nowhere/x:2")]
    registry = Registry({"reg:5000/app:1": DIGEST})
    warnings = imagepin.pin_images(services, "always", {}, registry)
    assert [s.task.container.image for s in services] == [f"reg:5000/app:1@{DIGEST}"] * 2 + ["nowhere/x:2"]
    assert registry.asked == ["reg:5000/app:1", "nowhere/x:2"]
    assert len(warnings) == 1 and "nowhere/x:2 could not be accessed" in warnings[0]


def test_changed_keeps_the_deployed_pin_of_an_unchanged_image_and_never_keeps_tags():
    deployed = {"s_a": spec("s_a", "reg:5000/app:1")}
    deployed["s_a"].task.container.image = f"reg:5000/app:1@{DIGEST}"
    services = [spec("s_a", "reg:5000/app:1"), spec("s_b", "reg:5000/app:2")]
    registry = Registry({"reg:5000/app:1": MOVED, "reg:5000/app:2": MOVED})
    imagepin.pin_images(services, "changed", deployed, registry)
    assert [s.task.container.image for s in services] == [f"reg:5000/app:1@{DIGEST}", f"reg:5000/app:2@{MOVED}"]
    assert registry.asked == ["reg:5000/app:2"]
    kept = [spec("s_a", "reg:5000/app:1")]
    imagepin.pin_images(kept, "never", deployed, registry)
    assert kept[0].task.container.image == "reg:5000/app:1"


def test_plain_http_for_loopback_and_listed_registries_only():
    listed = ("10.1.0.1:5000",)
    registries = ("localhost:5000", "127.0.0.1:5000", "10.1.0.1:5000", "10.1.0.2:5000", "docker.io")
    assert [imagepin.plain_http(r, listed) for r in registries] == [True, True, True, False, False]


def test_dockers_lines(capsys):
    changes = [Change(action=Change.REMOVE, kind="service", name="shop_old", id="o1"),
               Change(action=Change.CREATE, kind="network", name="shop_default", id="n1"),
               Change(action=Change.UNCHANGED, kind="service", name="shop_db", id="d1"),
               Change(action=Change.UPDATE, kind="service", name="shop_api", id="a1")]
    print_changes(changes, VERB)
    print_changes(changes[1:2], DRY_VERB)
    assert capsys.readouterr().out.splitlines() == [
        "Removing service shop_old", "Creating network shop_default", "Updating service shop_api (id: a1)",
        "Would create network shop_default"]


def test_deploy_takes_dockers_flags():
    args = build_parser().parse_args(["stack", "deploy", "-c", "a.yml", "-c", "b.yml", "--prune",
                                      "--resolve-image", "never", "--dry-run", "-d", "shop"])
    assert (args.compose_files, args.prune, args.resolve_image, args.dry_run, args.detach, args.stack) == (
        ["a.yml", "b.yml"], True, "never", True, True, "shop")


def test_stack_ps_lists_only_the_stacks_tasks_and_says_why_a_held_task_waits(capsys):
    ours = spec("shop_api", "app:1")
    ours.labels["com.docker.stack.namespace"] = "shop"
    services = [pb.Service(id="api", spec=ours), pb.Service(id="other", spec=spec("other", "app:1"))]
    held = task("t1", 1, service_id="api", service_name="shop_api", desired=pb.READY, state=pb.READY)
    held.explanation.text = "waiting for shop_db to be healthy"
    stranger = task("t2", 1, service_id="other", service_name="other")

    class Control:
        def ListServices(self, request):
            return control_pb2.ListServicesResponse(services=services)

        def ListTasks(self, request):
            return control_pb2.ListTasksResponse(tasks=[held, stranger])

        def ListNodes(self, request):
            return control_pb2.ListNodesResponse()

    conn = type("Conn", (), {"control": Control()})()
    stack_tasks(conn, build_parser().parse_args(["stack", "ps", "--explain", "shop"]))
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 4 and "shop_api.1" in out[1] and "waiting for shop_db to be healthy" in out[1]
    assert out[3] == "shop_api.1 is not started yet: waiting for shop_db to be healthy"
