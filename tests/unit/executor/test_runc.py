"""The runc wrapper's handling of runc's own races."""
import asyncio

import pytest

from worker.executor import runc as runc_module
from worker.executor.errors import CommandError
from worker.executor.proc import Result
from worker.executor.runc import LIST_ATTEMPTS, Runc

VANISHED = Result(1, "", 'time="..." level=error msg="stat /run/runc/c1: no such file or directory"\n')


def _runs(monkeypatch, results):
    calls = []

    async def fake_run(argv, timeout, *, check=True):
        calls.append(argv)
        return results[min(len(calls), len(results)) - 1]
    monkeypatch.setattr(runc_module, "run", fake_run)
    return calls


def test_list_lists_again_when_a_container_vanished_meanwhile(monkeypatch):
    calls = _runs(monkeypatch, [VANISHED, Result(0, '[{"id": "c2"}]', "")])
    assert asyncio.run(Runc("/run/x").list()) == [{"id": "c2"}]
    assert len(calls) == 2


def test_list_raises_when_it_keeps_failing(monkeypatch):
    calls = _runs(monkeypatch, [VANISHED])
    with pytest.raises(CommandError, match="no such file"):
        asyncio.run(Runc("/run/x").list())
    assert len(calls) == LIST_ATTEMPTS


def test_list_raises_other_errors_at_once(monkeypatch):
    calls = _runs(monkeypatch, [Result(1, "", "permission denied")])
    with pytest.raises(CommandError, match="permission denied"):
        asyncio.run(Runc("/run/x").list())
    assert len(calls) == 1
