"""Running external tools (runc, skopeo, umoci) from asyncio with a deadline on each call."""
from __future__ import annotations

import asyncio
import subprocess
from dataclasses import dataclass

from .errors import CommandError


@dataclass
class Result:
    rc: int
    out: str
    err: str


async def run(argv: list[str], timeout: float, *, check: bool = True,
              env: dict[str, str] | None = None, pass_fds: tuple[int, ...] = ()) -> Result:
    """Run a short-lived tool and collect its output. Only for tools that exit: never for
    `runc run -d`/`runc create`, whose detached child would hold the pipes open.
    `pass_fds`: descriptors the tool inherits (e.g. an in-memory file it reads by /dev/fd/N)."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        pass_fds=pass_fds)
    try:
        async with asyncio.timeout(timeout):
            out, err = await proc.communicate()
            rc = await proc.wait()  # at once: communicate waited for the exit
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise CommandError(f"{argv[0]} {argv[1] if len(argv) > 1 else ''} timed out after "
                           f"{timeout:g}s") from None
    except asyncio.CancelledError:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    res = Result(rc, out.decode(errors="replace"), err.decode(errors="replace"))
    if check and res.rc != 0:
        raise CommandError(f"{' '.join(argv[:3])} failed (exit {res.rc}): "
                           f"{(res.err or res.out).strip()[-800:]}")
    return res
