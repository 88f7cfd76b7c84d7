"""A thin runc wrapper. Each executor has its own `--root` state dir, so several coveyd on one
machine never see each other's containers. `runc create` is run by the shim (see shim.py),
never here: its detached child would keep any pipe we gave it."""
from __future__ import annotations

import builtins
import json

from .errors import CommandError
from .proc import Result, run

LIST_ATTEMPTS = 3


class Runc:
    def __init__(self, root: str, *, binary: str = "runc", timeout: float = 30.0):
        self.root, self.binary, self.timeout = root, binary, timeout

    def argv(self, *args: str) -> list[str]:
        return [self.binary, "--root", self.root, *args]

    async def start(self, cid: str) -> None:
        await run(self.argv("start", cid), self.timeout)

    async def kill(self, cid: str, sig: str, *, all_processes: bool = False) -> None:
        args = ["kill", *(["--all"] if all_processes else []), cid, sig.removeprefix("SIG")]
        res = await run(self.argv(*args), self.timeout, check=False)
        if res.rc != 0 and "not running" not in res.err and "does not exist" not in res.err \
                and "process already finished" not in res.err:
            raise CommandError(f"runc kill {cid} {sig}: {res.err.strip()}")

    async def state(self, cid: str) -> dict | None:
        """runc's state of the container, or None if runc does not know it."""
        res = await run(self.argv("state", cid), self.timeout, check=False)
        if res.rc != 0:
            if "does not exist" in res.err or "not exist" in res.err:
                return None
            raise CommandError(f"runc state {cid}: {res.err.strip()}")
        return json.loads(res.out)

    async def list(self) -> list[dict]:
        """Every container runc knows. runc reads its state dir, then each container's state:
        one deleted in between fails the whole listing, so list again (a few times at most)."""
        for _ in range(LIST_ATTEMPTS):
            res = await run(self.argv("list", "--format", "json"), self.timeout, check=False)
            if res.rc == 0:
                return json.loads(res.out or "null") or []
            if "no such file or directory" not in res.err:
                break
        raise CommandError(f"runc list: {res.err.strip()}")

    async def delete(self, cid: str, *, force: bool = True) -> None:
        res = await run(self.argv("delete", *(["--force"] if force else []), cid),
                        self.timeout, check=False)
        if res.rc != 0 and "does not exist" not in res.err:
            raise CommandError(f"runc delete {cid}: {res.err.strip()}")

    async def exec(self, cid: str, argv: builtins.list[str], timeout: float) -> Result:
        """Run a process in the container (healthchecks) and collect its output. The process
        gets the container's env, user and cwd (runc reuses the bundle's process spec)."""
        return await run(self.argv("exec", cid, *argv), timeout, check=False)
