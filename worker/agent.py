"""The agent: keeps this node's session with the leader's dispatcher.

It asks every known manager for a session at once; followers answer with the leader's
address, and the leader opens the session. Within it, the agent heartbeats at the period the
dispatcher asks for (an answer that does not come within two periods ends the session:
the link or the leader is gone), and watches another manager, which names the new leader as
soon as it follows one (a paused or cut-off leader just goes quiet). The managers list it
learns from session messages is handed to `on_managers` so the node can persist it and find
the swarm again after a restart.
"""
import asyncio
import dataclasses
import logging
import os
import platform
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NoReturn

import grpc

from covey import pki
from covey.errors import NotLeader
from proto import dispatcher_pb2, dispatcher_pb2_grpc, logbroker_pb2_grpc
from proto import objects_pb2 as pb
from worker.logs import LogPublisher

log = logging.getLogger(__name__)


@dataclass
class AgentSettings:
    connect_timeout: float = 5.0
    rpc_timeout: float = 5.0
    backoff_initial: float = 0.1   # no manager leads: ask them all again after this, doubling...
    backoff_max: float = 1.0       # ...up to this
    leaderless_retry: float = 0.2  # a follower that knows no leader yet is asked again after this
    heartbeat_timeout_periods: float = 2.0  # a heartbeat unanswered this long ends the session
    status_batch: float = 0.1   # status reports that come within this are sent together
    logs_poll: float = 0.5      # following service logs: how often to look for new tasks here


@dataclass
class Credentials:
    ca_cert: bytes
    key: bytes
    cert: bytes
    role: pb.NodeRole = pb.WORKER  # the role this certificate carries


async def _never() -> NoReturn:
    """Wait until cancelled: for the parts of a session this agent does not take part in."""
    await asyncio.Event().wait()
    raise AssertionError("an event no one can set was set")


class RoleChanged(Exception):
    """The node has a new certificate (a new role, or a renewal): reconnect with it."""


class LeaderMoved(Exception):
    """The watched manager follows another leader: open a session there."""

    def __init__(self, addr: str):
        super().__init__(f"the leader is now {addr}")
        self.addr = addr


@dataclass
class Opened:
    """A session the leader accepted: its channel, its stream and its first message."""
    addr: str
    channel: Any
    call: Any
    first: dispatcher_pb2.SessionMessage

    async def close(self) -> None:
        self.call.cancel()
        await self.channel.close()




def describe_node(hostname: str, engine_version: str) -> pb.NodeDescription:
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return pb.NodeDescription(
        hostname=hostname, engine_version=engine_version,
        platform=pb.Platform(os=platform.system().lower(), architecture=platform.machine()),
        resources=pb.Resources(nano_cpus=(os.cpu_count() or 1) * 10**9, memory_bytes=pages))


class Agent:
    def __init__(self, description: pb.NodeDescription, credentials: Credentials,
                 managers: list[str], channel_factory: Callable, settings: AgentSettings,
                 on_managers: Callable[[list[str]], None] = lambda m: None,
                 renew: Callable[[Any, pb.NodeRole], Awaitable[Credentials]] | None = None,
                 renew_in: Callable[[bytes], float] | None = None,
                 tasks=None, on_trust: Callable[[bytes], None] = lambda ca: None):
        self._description = description
        self._credentials = credentials
        self._managers = list(managers)
        self._channel_factory = channel_factory  # (addr, credentials) -> grpc.aio.Channel
        self._settings = settings
        self._on_managers = on_managers
        self._renew = renew  # async (channel, desired_role) -> Credentials
        self._renew_in = renew_in  # certificate PEM -> seconds until it should be renewed
        self._on_trust = on_trust  # keeps the CAs to trust (a root CA rotation changes them)
        self._tasks = tasks  # worker.tasks.TaskManager, or None for a node that runs nothing
        self._session: tuple[str, str] | None = None  # (leader address, session ID) while in one
        self.connected = asyncio.Event()

    async def run(self) -> None:
        failures, hint = 0, ""
        while True:
            try:
                opened = await self._open(hint)
            except (grpc.RpcError, ConnectionError, OSError, TimeoutError) as exc:
                failures, hint = failures + 1, ""
                log.warning("no session with a leader: %s", exc)
                await asyncio.sleep(self._backoff(failures))
                continue
            failures, hint = 0, ""
            try:
                await self._serve(opened)
            except LeaderMoved as moved:
                hint = moved.addr
                log.info("leaving the session with %s: %s", opened.addr, moved)
            except RoleChanged:
                pass
            except grpc.RpcError as exc:
                log.warning("session with %s ended: %s %s", opened.addr, exc.code().name, exc.details())
            except Exception as exc:  # keep the node trying whatever went wrong
                log.warning("session with %s failed: %r", opened.addr, exc)
            finally:
                self.connected.clear()
                self._session = None

    @property
    def leader(self) -> str | None:
        """The address of the manager this agent has its session with, if any."""
        return self._session[0] if self._session else None

    def _backoff(self, failures: int) -> float:
        s = self._settings
        return min(s.backoff_initial * 2 ** (failures - 1), s.backoff_max) * random.uniform(0.5, 1.0)

    async def _open(self, hint: str) -> Opened:
        """A session with the leader. Every known manager is asked at once (and the one `hint`
        names); a follower's answer names the leader, which is asked next, and a follower is
        asked again every `leaderless_retry` until some manager leads and accepts."""
        pending: dict[asyncio.Task, str] = {}
        winner: Opened | None = None
        errors: dict[str, str] = {}

        def ask(addr: str, delay: float = 0.0) -> None:
            if addr and addr not in pending.values():
                pending[asyncio.create_task(self._try_session(addr, delay))] = addr
        for addr in dict.fromkeys([hint, *self._managers]):
            ask(addr)
        try:
            async with asyncio.timeout(self._settings.rpc_timeout):
                while pending and winner is None:
                    done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                    for task in done:
                        addr = pending.pop(task)
                        try:
                            opened = task.result()
                        except grpc.RpcError as exc:  # a follower, or a leader not ready yet
                            errors[addr] = exc.details() or exc.code().name
                            ask(_leader_hint(exc) or "")
                            ask(addr, self._settings.leaderless_retry)
                            continue
                        except (ConnectionError, OSError, TimeoutError) as exc:
                            errors[addr] = str(exc) or type(exc).__name__
                            continue
                        if winner is None:
                            winner = opened
                        else:
                            await opened.close()
        except TimeoutError:
            pass
        finally:
            for task in pending:
                task.cancel()
            for result in await asyncio.gather(*pending, return_exceptions=True):
                if isinstance(result, Opened):
                    await result.close()
        if winner is None:
            raise ConnectionError("; ".join(f"{a}: {e}" for a, e in errors.items()) or "no manager answered")
        return winner

    async def _try_session(self, addr: str, delay: float) -> Opened:
        await asyncio.sleep(delay)
        channel = self._channel_factory(addr, self._credentials)
        try:
            await _connect(channel, self._settings.connect_timeout)
            call = dispatcher_pb2_grpc.DispatcherStub(channel).Session(
                dispatcher_pb2.SessionRequest(description=self._description))
            first = await call.read()
            if first is grpc.aio.EOF:
                raise ConnectionError("the dispatcher closed the session at once")
            return Opened(addr, channel, call, first)
        except BaseException:
            await channel.close()
            raise

    async def _serve(self, opened: Opened) -> None:
        first, channel = opened.first, opened.channel
        try:
            self._learn(first)
            log.info("session %s with %s established", first.session_id, opened.addr)
            await self._follow_root_ca(channel, first.ca_cert_pem)
            await self._follow_role(channel, first.role)
            stub = dispatcher_pb2_grpc.DispatcherStub(channel)
            self._session = (opened.addr, first.session_id)
            self.connected.set()
            period = first.heartbeat_period_ns / 1e9
            await _first_to_end(self._read(opened.call, channel), self._heartbeat(stub, first.session_id, period),
                                self._renew_when_due(channel), self._assignments(stub, first.session_id),
                                self._send_status(stub, first.session_id),
                                self._publish_logs(logbroker_pb2_grpc.LogBrokerStub(channel), first.session_id),
                                self._watch_leader(opened.addr))
        finally:
            await opened.close()

    async def leave(self) -> None:
        """Tell the leader this node leaves (it is Down at once); best effort. On a channel of
        its own: the leader ends the session, which closes the session's channel."""
        if self._session is None:
            return
        leader, session_id = self._session
        try:
            async with self._channel_factory(leader, self._credentials) as channel:
                await dispatcher_pb2_grpc.DispatcherStub(channel).Leave(
                    dispatcher_pb2.LeaveRequest(session_id=session_id), timeout=self._settings.rpc_timeout)
        except grpc.RpcError as exc:
            log.warning("could not tell the leader this node leaves: %s", exc.details())

    async def _watch_leader(self, leader: str) -> None:
        """Watch a manager other than the leader; when it follows another one, move there."""
        while True:
            others = [m for m in self._managers if m != leader]
            if others:
                try:
                    await self._follow_watch(random.choice(others), leader)
                except (grpc.RpcError, ConnectionError, OSError, TimeoutError) as exc:
                    log.debug("leader watch: %r", exc)
            await asyncio.sleep(self._settings.leaderless_retry)  # a lone manager, or the watch broke

    async def _follow_watch(self, addr: str, leader: str) -> None:
        async with self._channel_factory(addr, self._credentials) as channel:
            await _connect(channel, self._settings.connect_timeout)
            async for message in dispatcher_pb2_grpc.DispatcherStub(channel).Leader(dispatcher_pb2.LeaderRequest()):
                if message.leader_addr and message.leader_addr != leader:
                    raise LeaderMoved(message.leader_addr)

    async def _read(self, call, channel) -> None:
        while (message := await call.read()) is not grpc.aio.EOF:
            self._learn(message)
            await self._follow_root_ca(channel, message.ca_cert_pem)
            await self._follow_role(channel, message.role)
        raise ConnectionError("the dispatcher ended the session")

    async def _follow_role(self, channel, desired_role: pb.NodeRole) -> None:
        """The managers want this node in another role: renew the certificate for it."""
        if self._renew is None or desired_role == self._credentials.role:
            return
        credentials = await self._renew(channel, desired_role)
        if credentials.role != self._credentials.role:
            log.info("this node is now a %s", pb.NodeRole.Name(credentials.role).lower())
            self._credentials = credentials
            raise RoleChanged()

    async def _follow_root_ca(self, channel, bundle: bytes) -> None:
        """A root CA rotation: trust what the managers trust now, and renew at once a
        certificate that is not of the current CA (the session goes on with the new one)."""
        if not bundle or bundle == self._credentials.ca_cert:
            return
        self._credentials = dataclasses.replace(self._credentials, ca_cert=bundle)
        self._on_trust(bundle)
        if self._renew is not None and not pki.verify_signed_by(self._credentials.cert, pki.current_ca(bundle)):
            self._credentials = await self._renew(channel, self._credentials.role)
            log.info("renewed this node's certificate: the swarm has a new root CA")
            raise RoleChanged()  # reconnect with the new certificate

    def _learn(self, message: dispatcher_pb2.SessionMessage) -> None:
        managers = list(message.managers)
        if managers and managers != self._managers:
            self._managers = managers
            self._on_managers(managers)

    async def _renew_when_due(self, channel) -> None:
        """Renew the certificate before it expires; the session goes on with the new one."""
        if self._renew is None or self._renew_in is None:
            await _never()  # this agent does not renew
        while True:
            await asyncio.sleep(self._renew_in(self._credentials.cert))
            self._credentials = await self._renew(channel, self._credentials.role)
            log.info("renewed this node's certificate")
            raise RoleChanged()  # reconnect with the new certificate

    async def _assignments(self, stub, session_id: str) -> None:
        """Follow the tasks assigned here; a gap in the increments means: start over."""
        if self._tasks is None:
            await _never()
        expected = 1
        async for message in stub.Assignments(dispatcher_pb2.AssignmentsRequest(session_id=session_id)):
            if message.type == dispatcher_pb2.AssignmentsMessage.INCREMENTAL:
                if message.sequence != expected:
                    raise ConnectionError(f"assignments: got increment {message.sequence}, expected {expected}")
                expected += 1
            await self._tasks.apply(message)
        raise ConnectionError("the dispatcher ended the assignments stream")

    async def _publish_logs(self, stub, session_id: str) -> None:
        if self._tasks is None:
            await _never()
        await LogPublisher(self._tasks, self._settings.logs_poll).serve(stub, session_id)

    async def _send_status(self, stub, session_id: str) -> None:
        """Send task status reports in batches; a batch that fails is sent again later."""
        if self._tasks is None:
            await _never()
        reporter = self._tasks.reporter
        call = stub.TaskStatusReports()
        try:
            while True:
                await reporter.ready.wait()
                await asyncio.sleep(self._settings.status_batch)
                batch = reporter.take()
                try:
                    await self._ask(call, dispatcher_pb2.UpdateTaskStatusRequest(session_id=session_id, updates=batch))
                except BaseException:
                    reporter.put_back(batch)
                    raise
        finally:
            call.cancel()

    async def _heartbeat(self, stub, session_id: str, period: float) -> None:
        call = stub.Heartbeats()
        try:
            while True:
                timeout = self._settings.heartbeat_timeout_periods * period
                response = await self._ask(call, dispatcher_pb2.HeartbeatRequest(session_id=session_id), timeout)
                period = response.period_ns / 1e9 or period
                await asyncio.sleep(period)
        finally:
            call.cancel()

    async def _ask(self, call, request, timeout: float | None = None):
        """One request on a stream the dispatcher answers message by message."""
        async with asyncio.timeout(self._settings.rpc_timeout):
            await call.write(request)
        response = await _within_own_time(call.read(), timeout or self._settings.rpc_timeout)
        if response is grpc.aio.EOF:
            raise ConnectionError("the dispatcher ended the stream")
        return response


async def _within_own_time(awaitable, timeout: float, tick: float = 0.1):
    """Await with a timeout that counts only the time this process's loop kept up: a loop that
    ran late (a busy node; 500 simulated ones in one process) delayed the reading, not the
    peer. Without this, a busy node would leave a healthy leader, and reconnect storms follow."""
    task = asyncio.ensure_future(awaitable)
    loop = asyncio.get_running_loop()
    try:
        while timeout > 0:
            started = loop.time()
            done, _ = await asyncio.wait({task}, timeout=tick)
            if done:
                return task.result()
            timeout -= min(loop.time() - started, tick)   # a late wake-up counts one tick
        raise TimeoutError()
    finally:
        task.cancel()


async def _connect(channel, timeout: float) -> None:
    """Wait for the channel to be ready, but give up at its first failure: a dead manager
    refuses at once, and the next one should be tried now, not after the timeout."""
    async def ready():
        state = channel.get_state(try_to_connect=True)
        while state != grpc.ChannelConnectivity.READY:
            if state in (grpc.ChannelConnectivity.TRANSIENT_FAILURE, grpc.ChannelConnectivity.SHUTDOWN):
                raise ConnectionError("cannot connect")
            await channel.wait_for_state_change(state)
            state = channel.get_state(try_to_connect=True)
    async with asyncio.timeout(timeout):
        await ready()


def _leader_hint(exc: grpc.RpcError) -> str | None:
    try:
        metadata = exc.trailing_metadata() or ()
    except Exception:
        return None
    for key, value in metadata:
        if key == NotLeader.METADATA_KEY:
            return value
    return None


async def _first_to_end(*coroutines) -> None:
    """Run together until one ends; cancel the rest; raise what the first raised."""
    tasks = [asyncio.create_task(c) for c in coroutines]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in done:
        task.result()
