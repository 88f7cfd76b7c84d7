"""Services through the control API of a real in-process manager, over mTLS: the
orchestrator turns them into tasks, the scheduler places them, scaling and removal tell
them to go. (This node runs no executor: nothing acts on the tasks, so they stay put.)"""
import grpc

from covey import tls
from manager.state.actions import modify
from proto import control_pb2, control_pb2_grpc, store_pb2
from proto import objects_pb2 as pb
from proto import specs_pb2 as specs
from tests.integration.inproc import start_manager
from tests.support.builders import service_spec
from tests.support.poll import until


def web_spec(name="web"):
    return service_spec(name, "registry.local/web:v1", replicas=3)


def test_create_scale_remove(tmp_path, run):
    async def scenario():
        node = await start_manager(tmp_path)
        try:
            s = node.state
            async with tls.secure_channel(node.membership.advertise_addr, s.ca_cert(), s.key(), s.cert()) as ch:
                control = control_pb2_grpc.ControlStub(ch)

                async def tasks(desired=None):
                    listed = (await control.ListTasks(control_pb2.ListTasksRequest(service="web"))).tasks
                    return [t for t in listed if desired is None or t.desired_state == desired]

                created = (await control.CreateService(control_pb2.CreateServiceRequest(spec=web_spec()))).service
                three = await until(lambda: _placed(tasks(pb.RUNNING), 3), what="3 tasks assigned")
                slots = sorted(t.slot for t in three)
                states = {(t.status.state, t.node_id) for t in three}

                errors = {}
                for label, bad in (("duplicate", web_spec()), ("name", web_spec(name="-bad")),
                                   ("image", specs.ServiceSpec(name="noimage"))):
                    try:
                        await control.CreateService(control_pb2.CreateServiceRequest(spec=bad))
                    except grpc.RpcError as exc:
                        errors[label] = (exc.code().name, exc.details())

                await control.ScaleService(control_pb2.ScaleServiceRequest(service=created.id[:6], replicas=1))
                one = await until(lambda: _count(tasks(pb.RUNNING), 1), what="1 task wanted running")
                going = await until(lambda: _count(tasks(pb.REMOVE), 2), what="2 tasks told to go")

                await control.RemoveService(control_pb2.RemoveServiceRequest(service="web"))
                await until(lambda: _all_told_to_go(control), what="every task told to go")
                return slots, states, errors, one[0].slot, sorted(t.slot for t in going), node.membership.node_id

        finally:
            await node.close()

    slots, states, errors, remaining_slot, going, node_id = run(scenario())
    assert slots == [1, 2, 3] and states == {(pb.ASSIGNED, node_id)}
    assert going == [2, 3]
    assert errors["duplicate"][0] == "ALREADY_EXISTS"
    assert errors["name"][0] == "INVALID_ARGUMENT" and "invalid service name" in errors["name"][1]
    assert errors["image"][0] == "INVALID_ARGUMENT" and "image is required" in errors["image"][1]
    assert remaining_slot == 1


def test_remove_wins_over_a_concurrent_writer(tmp_path, run):
    """`service rm` while another writer (the updater, a second client) changes the service
    between the removal's read and its write: the removal still succeeds."""
    async def scenario():
        node = await start_manager(tmp_path)
        try:
            s, store = node.state, node.manager.store
            async with tls.secure_channel(node.membership.advertise_addr, s.ca_cert(), s.key(), s.cert()) as ch:
                control = control_pb2_grpc.ControlStub(ch)
                created = (await control.CreateService(control_pb2.CreateServiceRequest(spec=web_spec()))).service
                write, raced = store.write, []

                async def racing(actions):
                    if not raced and any(a.kind == store_pb2.StoreAction.DELETE for a in actions):
                        raced.append(await modify(store, pb.Service, created.id,
                                                     lambda svc: svc.spec.labels.update(touched="1"), 0))
                    return await write(actions)
                store.write = racing
                await control.RemoveService(control_pb2.RemoveServiceRequest(service="web"))
                return raced, store.services.get(created.id)
        finally:
            await node.close()

    raced, left = run(scenario())
    assert raced and left is None


async def _count(coro, n):
    items = await coro
    return items if len(items) == n else None


async def _placed(coro, n):
    items = await _count(coro, n)
    return items if items and all(t.status.state == pb.ASSIGNED for t in items) else None


async def _all_told_to_go(control):
    services = (await control.ListServices(control_pb2.ListServicesRequest())).services
    tasks = (await control.ListTasks(control_pb2.ListTasksRequest())).tasks
    return not services and tasks and all(t.desired_state == pb.REMOVE for t in tasks)
