"""`docker exec` for the executor's containers: a process started in a running container with
`runc exec`, its stdin fed and its output streamed while it runs.

With a terminal (`tty`), a foreground `runc exec -t` relays the process's terminal to its own
stdin and stdout, which must be a terminal: we give it one (a pty pair) and read and write its
master. (runc's --console-socket hands over the master only with --detach, and a detached
process's exit code is lost.) runc forwards the signals it gets to the process, but not
SIGKILL: to end the process (the caller went away) we kill it by the pid runc writes."""
from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import re
import shutil
import signal
import struct
import subprocess
import termios
import tty
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

READ_SIZE = 64 * 1024
QUEUED_CHUNKS = 64          # output read ahead of the caller; then the process waits (back pressure)
STDOUT, STDERR = "stdout", "stderr"
DEFAULT_TERM = "TERM=xterm"
RUNC_FAILED_EXIT = 255      # runc's own exit when it could not start the process
# runc's error line when it could not start the process (a logrus line on its stderr)
RUNC_EXEC_ERROR = re.compile(rb'^time="[^"]*" level=error msg="(exec failed: .*)"\n?$')
CANNOT_EXECUTE, NOT_FOUND = 126, 127     # Docker's exit codes for a command that could not start


@dataclass
class ExecOptions:
    argv: list[str]
    env: list[str] = field(default_factory=list)      # KEY=VALUE, over the container's own
    user: str = ""            # user[:group], names from the container's /etc/passwd; "" the container's
    workdir: str = ""         # "" the container's
    stdin: bool = False       # keep stdin open for `feed` (else the process reads /dev/null)
    tty: bool = False
    rows: int = 0
    cols: int = 0


@dataclass
class ExecUser:
    uid: int
    gid: int
    groups: list[int]


class ExecSession:
    """One exec'd process. `start`, then `feed`/`close_stdin` and `output` at once, then `wait`."""

    def __init__(self, runc_argv: list[str], scratch: Path):
        self._runc_argv = runc_argv           # `runc --root R exec [flags]`, without the id and command
        self._scratch = scratch               # this session's own dir (the pid file)
        self._proc: asyncio.subprocess.Process | None = None
        self._master: int | None = None
        self._queue: asyncio.Queue[tuple[str, bytes] | None] = asyncio.Queue(QUEUED_CHUNKS)
        self._readers: list[asyncio.Task] = []
        self._start_error = ""                # runc's reason when it could not start the process

    @classmethod
    async def start(cls, runc_argv: list[str], run_dir: Path, cid: str, opts: ExecOptions,
                    user: ExecUser | None) -> ExecSession:
        scratch = run_dir / "exec" / uuid.uuid4().hex[:12]
        scratch.mkdir(parents=True)
        session = cls(runc_argv, scratch)
        try:
            await session._launch(cid, opts, user)
        except BaseException:
            await session.close()
            raise
        return session

    # ---- starting --------------------------------------------------------------------
    def _flags(self, opts: ExecOptions, user: ExecUser | None) -> list[str]:
        flags = ["--pid-file", str(self._scratch / "pid")]
        for item in opts.env:
            flags += ["--env", item]
        if opts.workdir:
            flags += ["--cwd", opts.workdir]
        if user is not None:
            flags += ["--user", f"{user.uid}:{user.gid}"]
            flags += [arg for gid in user.groups for arg in ("--additional-gids", str(gid))]
        if opts.tty:
            flags.append("--tty")
            if not any(item.startswith("TERM=") for item in opts.env):
                flags += ["--env", DEFAULT_TERM]     # as Docker's exec -t
        return flags

    async def _launch(self, cid: str, opts: ExecOptions, user: ExecUser | None) -> None:
        argv = [*self._runc_argv, *self._flags(opts, user), cid, *opts.argv]
        if opts.tty:
            await self._launch_with_terminal(argv, opts)
            return
        self._proc = await asyncio.create_subprocess_exec(
            *argv, stdin=subprocess.PIPE if opts.stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert self._proc.stdout and self._proc.stderr
        self._readers = [asyncio.ensure_future(self._pump(self._proc.stdout, STDOUT)),
                         asyncio.ensure_future(self._pump(self._proc.stderr, STDERR))]

    async def _launch_with_terminal(self, argv: list[str], opts: ExecOptions) -> None:
        """runc makes the process's terminal and relays it to its own stdin and stdout, which
        must be a terminal too: ours, whose master we read and write."""
        self._master, slave = os.openpty()
        tty.setraw(slave)    # runc makes it raw too, but only after its relay has begun: \n would become \r\r\n
        if opts.rows and opts.cols:
            self._set_size(opts.rows, opts.cols)     # runc copies it to the process's terminal
        try:    # runc's own errors (no such cwd, no such command) come on its stderr
            self._proc = await asyncio.create_subprocess_exec(*argv, stdin=slave, stdout=slave,
                                                              stderr=subprocess.PIPE)
        finally:
            os.close(slave)      # runc's copies stay: the master reads EIO once runc is gone
        os.set_blocking(self._master, False)
        assert self._proc.stderr
        self._readers = [asyncio.ensure_future(self._pump_master(self._master)),
                         asyncio.ensure_future(self._pump(self._proc.stderr, STDERR))]

    # ---- while it runs -------------------------------------------------------------------
    async def _pump(self, reader: asyncio.StreamReader, stream: str) -> None:
        while chunk := await reader.read(READ_SIZE):
            await self._queue.put((stream, self._runc_error(chunk) if stream == STDERR else chunk))
        await self._queue.put(None)

    def _runc_error(self, chunk: bytes) -> bytes:
        """runc's own failure to start the process, said plainly (and remembered for the exit code)."""
        match = RUNC_EXEC_ERROR.match(chunk)
        if match is None:
            return chunk
        self._start_error = match.group(1).decode(errors="replace").replace('\\"', '"')
        return f"covey: {self._start_error}\n".encode()

    async def _pump_master(self, master: int) -> None:
        loop, readable = asyncio.get_running_loop(), asyncio.Event()
        loop.add_reader(master, readable.set)
        try:
            while True:
                await readable.wait()
                readable.clear()
                try:
                    chunk = os.read(master, READ_SIZE)
                except BlockingIOError:
                    continue
                except OSError:      # EIO: every process on the terminal is gone
                    break
                if not chunk:
                    break
                await self._queue.put((STDOUT, chunk))
        finally:
            loop.remove_reader(master)
        await self._queue.put(None)

    async def feed(self, data: bytes) -> None:
        if self._master is not None:
            await self._write_master(data)
        elif self._proc and self._proc.stdin:
            try:
                self._proc.stdin.write(data)
                await self._proc.stdin.drain()
            except (BrokenPipeError, ConnectionResetError):
                pass                 # the process stopped reading: as a pipe would
        # else: started without stdin (no -i): input is dropped, as Docker's

    async def _write_master(self, data: bytes) -> None:
        assert self._master is not None
        loop, writable = asyncio.get_running_loop(), asyncio.Event()
        while data:
            try:
                data = data[os.write(self._master, data):]
            except BlockingIOError:      # the terminal's buffer is full: wait until it drains
                writable.clear()
                loop.add_writer(self._master, writable.set)
                try:
                    await writable.wait()
                finally:
                    loop.remove_writer(self._master)
            except OSError:
                return

    async def close_stdin(self) -> None:
        """End of input. A terminal has no end of input (as Docker's): it stays open."""
        if self._master is None and self._proc and self._proc.stdin:
            self._proc.stdin.close()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                await self._proc.stdin.wait_closed()

    def _set_size(self, rows: int, cols: int) -> None:
        assert self._master is not None
        fcntl.ioctl(self._master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def resize(self, rows: int, cols: int) -> None:
        """A new terminal size: runc reads it from its terminal on SIGWINCH and passes it on."""
        if self._master is not None and self._proc and self._proc.returncode is None:
            self._set_size(rows, cols)
            self._proc.send_signal(signal.SIGWINCH)

    async def output(self) -> AsyncIterator[tuple[str, bytes]]:
        """(stream, bytes) until the process's output ends."""
        open_streams = len(self._readers)
        while open_streams:
            item = await self._queue.get()
            if item is None:
                open_streams -= 1
            else:
                yield item

    async def wait(self) -> int:
        """The process's exit code (128 + N for a signal N, as a shell says it); as Docker's
        exec, 127 for a command not found and 126 for one that could not be started."""
        assert self._proc
        code = await self._proc.wait()
        if code == RUNC_FAILED_EXIT and self._start_error:
            missing = "not found" in self._start_error or "no such file" in self._start_error
            return NOT_FOUND if missing and "chdir" not in self._start_error else CANNOT_EXECUTE
        return 128 - code if code < 0 else code

    # ---- ending ----------------------------------------------------------------------
    def kill(self) -> None:
        """End the exec'd process (runc then exits with it)."""
        try:
            pid = int((self._scratch / "pid").read_text())
        except (OSError, ValueError):
            pid = 0
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        elif self._proc and self._proc.returncode is None:
            self._proc.kill()        # runc has not started it yet

    async def close(self) -> None:
        """Kill what still runs, and release the terminal, the readers and the scratch dir."""
        if self._proc and self._proc.returncode is None:
            self.kill()
            await self._proc.wait()
        for reader in self._readers:
            reader.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)
        if self._master is not None:
            os.close(self._master)
            self._master = None
        shutil.rmtree(self._scratch, ignore_errors=True)
