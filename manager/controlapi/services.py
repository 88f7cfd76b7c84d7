"""The control API for services: create, list, inspect, scale, update, remove, logs.

Writes only record intent (the service spec, a scale); the orchestrators turn it into
tasks and the scheduler places them (manager/orchestrator/services.py).
"""
import ipaddress
import re
import time
from collections.abc import AsyncIterator, Callable

import grpc

from covey.errors import AlreadyExists, Conflict, FailedPrecondition, InvalidArgument, NotFound, NotLeader
from covey.ids import new_id
from manager.allocator import ports
from manager.controlapi.secrets import resolve_references
from manager.dispatcher.logbroker import LogBroker
from manager.orchestrator import jobs
from manager.scheduler import placement
from manager.state import store as st
from manager.state.actions import create, modify, remove, update, write_fresh
from manager.state.queries import cluster_of, find_network, find_service
from proto import control_pb2, control_pb2_grpc, store_pb2
from proto import objects_pb2 as pb
from proto import specs_pb2 as specs

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
WRITE_ATTEMPTS = 10   # concurrent writers of published ports each conflict at most once per other


def validate_spec(service_spec: specs.ServiceSpec) -> None:
    if not NAME.match(service_spec.name):
        raise InvalidArgument(f"invalid service name {service_spec.name!r}: 1 to 63 letters, digits, '_.-', "
                              "starting with a letter or digit")
    if not service_spec.task.container.image:
        raise InvalidArgument(f"service {service_spec.name}: an image is required")
    job = service_spec.replicated_job
    if service_spec.WhichOneof("mode") == "replicated_job" and job.max_concurrent > job.total_completions:
        raise InvalidArgument(f"service {service_spec.name}: max concurrent ({job.max_concurrent}) is more "
                              f"than the completions wanted ({job.total_completions})")
    ports.validate(service_spec)


def resolve_networks(store: st.Store, service_spec: specs.ServiceSpec) -> None:
    """Each spec.task.networks[].target, given as a network's name, ID or unique ID prefix,
    becomes the network's ID (as Docker stores it); NotFound for an unknown one."""
    seen: dict[str, str] = {}
    for config in service_spec.task.networks:
        network = find_network(store, config.target)
        if network.spec.ingress:
            raise InvalidArgument(f"service {service_spec.name}: the ingress network {network.spec.name} "
                                  "cannot be attached explicitly; publish a port instead")
        if network.id in seen:
            raise InvalidArgument(f"service {service_spec.name}: network {network.spec.name} is attached "
                                  f"more than once (as {seen[network.id]!r} and {config.target!r})")
        seen[network.id] = config.target
        config.target = network.id
        check_addresses(service_spec.name, network, config.addresses)


def check_addresses(service: str, network: pb.Network, addresses) -> None:
    """A static address (compose ipv4_address): one, an IPv4 address of the network's subnet."""
    if len(addresses) > 1:
        raise InvalidArgument(f"service {service}: one address per network at most ({', '.join(addresses)})")
    for text in addresses:
        try:
            addr = ipaddress.IPv4Address(text.split("/")[0])
        except ValueError:
            raise InvalidArgument(f"service {service}: invalid address {text!r} on network "
                                  f"{network.spec.name}: give an IPv4 address") from None
        if addr not in ipaddress.ip_network(network.subnet):
            raise InvalidArgument(f"service {service}: address {addr} is not in network "
                                  f"{network.spec.name}'s subnet {network.subnet}")


def blanked(service: pb.Service) -> pb.Service:
    """The service as the API shows it: its registry credentials never leave the managers
    but for the nodes that pull (manager/dispatcher/assignments.py)."""
    if not service.HasField("registry_auth"):
        return service
    shown = pb.Service()
    shown.CopyFrom(service)
    shown.ClearField("registry_auth")
    return shown


class ServiceAPI:
    def __init__(self, store: st.Store, logs: LogBroker, leader_channel: Callable[[], grpc.aio.Channel | None]):
        self._store = store
        self._logs = logs
        self._leader_channel = leader_channel  # a channel to the leader, with this node's certificate

    async def create(self, request: control_pb2.CreateServiceRequest) -> control_pb2.CreateServiceResponse:
        service_spec = specs.ServiceSpec()
        service_spec.CopyFrom(request.spec)
        validate_spec(service_spec)
        if service_spec.WhichOneof("mode") is None:
            service_spec.replicated.replicas = 1  # Docker's default
        placement.validate(placement.Demand.from_service(pb.Service(spec=service_spec)))
        resolve_networks(self._store, service_spec)
        resolve_references(self._store, service_spec)
        now = time.time_ns()
        service = pb.Service(id=new_id(), meta=pb.Meta(created_at_ns=now, updated_at_ns=now),
                             spec=service_spec, spec_version=1)
        if request.HasField("registry_auth"):
            service.registry_auth.CopyFrom(request.registry_auth)

        def plan() -> list[store_pb2.StoreAction]:
            if any(s.spec.name == service_spec.name for s in self._store.services.view()):
                raise AlreadyExists(f"a service named {service_spec.name} already exists")
            del service.ports[:]
            service.ports.extend(ports.allocate(service_spec, service.id, self._store.services.view()))
            return [create(service), self._guard()]
        await write_fresh(self._store, plan, WRITE_ATTEMPTS, f"creating service {service_spec.name}")
        service.meta.version = 1
        return control_pb2.CreateServiceResponse(service=blanked(service))

    def _guard(self) -> store_pb2.StoreAction:
        """The cluster object written back unchanged: its version makes two writes that chose
        published ports from the same state conflict, so the second plans again (and sees the
        first's ports). Two creates of one name conflict the same way."""
        cluster = cluster_of(self._store)
        cluster.meta.updated_at_ns = time.time_ns()
        return update(cluster)

    async def list(self, request: control_pb2.ListServicesRequest) -> control_pb2.ListServicesResponse:
        services = sorted(self._store.services.list(), key=lambda s: s.spec.name)
        return control_pb2.ListServicesResponse(services=[blanked(s) for s in services])

    async def get(self, request: control_pb2.GetServiceRequest) -> control_pb2.GetServiceResponse:
        return control_pb2.GetServiceResponse(service=blanked(find_service(self._store, request.service)))

    async def scale(self, request: control_pb2.ScaleServiceRequest) -> control_pb2.ScaleServiceResponse:
        target = find_service(self._store, request.service)
        if target.spec.WhichOneof("mode") != "replicated":
            raise FailedPrecondition(f"{target.spec.name}: scale can only be used with replicated mode")

        def change(service):
            service.spec.replicated.replicas = request.replicas
        service = await modify(self._store, pb.Service, target.id, change, time.time_ns())
        return control_pb2.ScaleServiceResponse(service=blanked(service))

    async def update(self, request: control_pb2.UpdateServiceRequest) -> control_pb2.UpdateServiceResponse:
        """A new spec (or, with rollback, the previous one): the orchestrator rolls it out."""
        target = find_service(self._store, request.service)
        if request.rollback:
            if not target.HasField("previous_spec"):
                raise FailedPrecondition(f"service {target.spec.name} has no previous spec to roll back to")
            new_spec, state = target.previous_spec, pb.UpdateStatus.ROLLBACK_STARTED
        else:
            new_spec, state = specs.ServiceSpec(), pb.UpdateStatus.UPDATING
            new_spec.CopyFrom(request.spec)
            validate_spec(new_spec)
            resolve_networks(self._store, new_spec)
            resolve_references(self._store, new_spec)
            placement.validate(placement.Demand.from_service(pb.Service(spec=new_spec)))
            if new_spec.name != target.spec.name:
                raise InvalidArgument("a service cannot be renamed")
            if new_spec.WhichOneof("mode") != target.spec.WhichOneof("mode"):
                raise InvalidArgument("a service's mode (replicated, global or a job) cannot be changed")

        written: list[pb.Service] = []

        def plan() -> list[store_pb2.StoreAction]:
            service = self._store.services.get(target.id)
            if service is None:
                raise NotFound(f"service {target.spec.name} not found")
            written[:] = [service]
            service.meta.updated_at_ns = time.time_ns()
            if request.expected_version and service.meta.version != request.expected_version:
                raise Conflict(f"service {service.spec.name} changed since it was read; try again")
            if request.HasField("registry_auth"):
                service.registry_auth.CopyFrom(request.registry_auth)
                if not request.rollback and new_spec == service.spec:
                    return [update(service)]  # new credentials only: nothing to roll out
            previous = specs.ServiceSpec()
            previous.CopyFrom(service.spec)
            service.spec.CopyFrom(new_spec)
            service.previous_spec.CopyFrom(previous)
            service.spec_version += 1
            message = "manually requested rollback" if request.rollback else "update in progress"
            service.update_status.CopyFrom(pb.UpdateStatus(state=state, started_at_ns=time.time_ns(),
                                                           message=message))
            if jobs.is_job(service.spec):  # no rolling update: the job runs again from scratch
                service.ClearField("update_status")
            del service.ports[:]
            service.ports.extend(ports.allocate(new_spec, service.id, self._store.services.view()))
            return [update(service), self._guard()]
        await write_fresh(self._store, plan, WRITE_ATTEMPTS, f"updating service {target.spec.name}")
        service = written[0]
        service.meta.version += 1
        return control_pb2.UpdateServiceResponse(service=blanked(service))

    async def remove(self, request: control_pb2.RemoveServiceRequest) -> control_pb2.RemoveServiceResponse:
        service = find_service(self._store, request.service)
        # The service goes at once; the orchestrator tells its tasks to go (one writer for
        # tasks: rewriting them here would race the scheduler and the nodes' reports).
        await remove(self._store, pb.Service, service.id)  # wins over a concurrent writer
        return control_pb2.RemoveServiceResponse()

    async def logs(self, request: control_pb2.ServiceLogsRequest,
                   context) -> AsyncIterator[control_pb2.ServiceLogsMessage]:
        if request.tail < -1:
            raise InvalidArgument(f"invalid tail {request.tail}: a number of lines, or -1 for all")
        if not self._store.is_leader():  # the nodes' log streams end on the leader
            async for message in self._logs_from_leader(request, context):
                yield message
            return
        service = find_service(self._store, request.service)
        async for message in self._logs.read(service, request):
            yield message

    async def _logs_from_leader(self, request, context):
        channel = self._leader_channel()
        if channel is None:
            raise NotLeader(None)
        async with channel:
            try:
                async for message in control_pb2_grpc.ControlStub(channel).ServiceLogs(request):
                    yield message
            except grpc.aio.AioRpcError as exc:
                await context.abort(exc.code(), exc.details())
