"""The control API for stacks (`covey stack deploy / ls / rm / rollback`).

Each change is planned by manager/controlapi/stackplan.py from what is stored and written as
ONE Raft entry: every service, network, secret and config of the stack changes together, or
nothing does. A conflicting concurrent write (the plan writes the cluster object back with the
version it read) makes it plan again from what the other stored.
"""
import asyncio
import functools
from collections.abc import Callable

from covey import imagepin
from covey.errors import NotFound
from manager.controlapi import stackplan
from manager.state import store as st
from manager.state.actions import write_fresh
from proto import control_pb2
from proto import specs_pb2 as specs

WRITE_ATTEMPTS = 10   # each concurrent stack or network write makes a deploy plan again at most once


class StackAPI:
    def __init__(self, store: st.Store, insecure_registries: tuple[str, ...] = ()):
        self._store = store
        self._insecure = insecure_registries   # registries this node reaches over plain HTTP

    async def _write(self, plan: Callable[[stackplan.Snapshot], stackplan.Plan], what: str) -> stackplan.Plan:
        planned: list[stackplan.Plan] = []

        def actions():
            planned[:] = [plan(stackplan.Snapshot.of(self._store))]
            return planned[0].actions
        await write_fresh(self._store, actions, WRITE_ATTEMPTS, what)
        return planned[0]

    async def deploy(self, request: control_pb2.DeployStackRequest) -> control_pb2.DeployStackResponse:
        spec = specs.StackSpec()
        spec.CopyFrom(request.spec)
        warnings = await self._pin_images(spec, request.resolve_image or "never")

        def plan(snap: stackplan.Snapshot) -> stackplan.Plan:
            return stackplan.deploy(snap, spec, prune=request.prune, registry_auths=request.registry_auths)
        if request.dry_run:
            done = plan(stackplan.Snapshot.of(self._store))
        else:
            done = await self._write(plan, f"deploying stack {spec.name}")
        stack = stackplan.public(done.stack) if done.stack is not None else None
        return control_pb2.DeployStackResponse(stack=stack, changes=done.changes, warnings=warnings)

    async def _pin_images(self, spec: specs.StackSpec, mode: str) -> list[str]:
        """--resolve-image: the registry is asked from here, in a thread (skopeo takes a while)."""
        if mode == "never":
            return []
        deployed = {s.spec.name: s.spec for s in self._store.services.list()
                    if stackplan.owned_by(s.spec.labels, spec.name)}
        inspect = functools.partial(imagepin.skopeo_digest, insecure=self._insecure)
        return await asyncio.to_thread(imagepin.pin_images, list(spec.services), mode, deployed, inspect)

    async def list(self, request: control_pb2.ListStacksRequest) -> control_pb2.ListStacksResponse:
        stacks = sorted(self._store.stacks.list(), key=lambda s: s.spec.name)
        return control_pb2.ListStacksResponse(stacks=[stackplan.public(s) for s in stacks])

    async def get(self, request: control_pb2.GetStackRequest) -> control_pb2.GetStackResponse:
        stack = stackplan.Snapshot.of(self._store).stack(request.stack)
        if stack is None:
            raise NotFound(f"stack {request.stack} not found")
        return control_pb2.GetStackResponse(stack=stackplan.public(stack))

    async def remove(self, request: control_pb2.RemoveStackRequest) -> control_pb2.RemoveStackResponse:
        done = await self._write(lambda snap: stackplan.remove(snap, request.stack),
                                 f"removing stack {request.stack}")
        return control_pb2.RemoveStackResponse(changes=done.changes)

    async def rollback(self, request: control_pb2.RollbackStackRequest) -> control_pb2.RollbackStackResponse:
        done = await self._write(lambda snap: stackplan.rollback(snap, request.stack),
                                 f"rolling back stack {request.stack}")
        stack = stackplan.public(done.stack) if done.stack is not None else None
        return control_pb2.RollbackStackResponse(stack=stack, changes=done.changes)

    def handlers(self) -> dict:
        return {"DeployStack": self.deploy, "ListStacks": self.list, "GetStack": self.get,
                "RemoveStack": self.remove, "RollbackStack": self.rollback}
