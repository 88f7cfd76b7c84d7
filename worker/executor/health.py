"""Healthchecks as Docker runs them: the test runs inside the container (`runc exec`) every
`interval`; a run longer than `timeout` fails; `retries` failures in a row make the container
unhealthy; failures during `start_period` do not count, but a success there counts."""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .config import Healthcheck
from .errors import CommandError, ExecutorError
from .runc import Runc

log = logging.getLogger(__name__)
STARTING, HEALTHY, UNHEALTHY = "starting", "healthy", "unhealthy"
KEEP_RESULTS = 5
MAX_OUTPUT = 4096


def check_argv(hc: Healthcheck) -> list[str] | None:
    """The command to exec, or None for NONE/empty (no check)."""
    if not hc.test or hc.test[0] == "NONE":
        return None
    kind, args = hc.test[0], hc.test[1:]
    if kind == "CMD" and args:
        return list(args)
    if kind == "CMD-SHELL" and len(args) == 1:
        return ["/bin/sh", "-c", args[0]]
    raise ExecutorError(f"invalid healthcheck test {hc.test!r}: use [\"CMD\", args...], "
                        "[\"CMD-SHELL\", \"command\"] or [\"NONE\"]")


@dataclass
class ProbeResult:
    start: float
    end: float
    exit_code: int
    output: str


@dataclass
class HealthState:
    status: str = STARTING
    failing_streak: int = 0
    log: list[ProbeResult] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"status": self.status, "failing_streak": self.failing_streak,
                "log": [vars(r) for r in self.log]}


class HealthMonitor:
    def __init__(self, runc: Runc, cid: str, hc: Healthcheck,
                 on_change: Callable[[str, HealthState], None] | None = None,
                 started_at: float | None = None):
        self.runc, self.cid, self.hc = runc, cid, hc
        self.argv = check_argv(hc)
        self.state = HealthState()
        self.on_change = on_change
        self.started_at = time.monotonic() if started_at is None else started_at
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        if self.argv and self._task is None:
            self._task = asyncio.ensure_future(self._loop(self.argv))

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _loop(self, argv: list[str]) -> None:
        while True:
            await asyncio.sleep(self.hc.interval)
            result = await self.probe(argv)
            self._record(result)

    async def probe(self, argv: list[str]) -> ProbeResult:
        start = time.time()
        try:
            res = await self.runc.exec(self.cid, argv, self.hc.timeout)
            code, out = res.rc, (res.out + res.err)[-MAX_OUTPUT:]
        except CommandError as e:     # timed out
            code, out = -1, f"health check exceeded timeout ({self.hc.timeout:g}s): {e}"
        return ProbeResult(start, time.time(), code, out)

    def _record(self, r: ProbeResult) -> None:
        st = self.state
        before = st.status
        st.log = (st.log + [r])[-KEEP_RESULTS:]
        if r.exit_code == 0:
            st.failing_streak = 0
            st.status = HEALTHY
        elif time.monotonic() - self.started_at < self.hc.start_period and st.status == STARTING:
            pass                      # failures in the start period do not count
        else:
            st.failing_streak += 1
            if st.failing_streak >= max(1, self.hc.retries):
                st.status = UNHEALTHY
        if st.status != before:
            log.info("container %s is %s", self.cid, st.status)
            if self.on_change:
                self.on_change(self.cid, st)
