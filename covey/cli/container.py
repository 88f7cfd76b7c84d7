"""covey container ls / inspect / logs / exec: the containers on this node (like `docker ps`
and `docker exec` there)."""
import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import termios
import threading
import time
import tty
from collections.abc import AsyncIterator

from covey.cli.logs import add_log_flags, container_logs
from covey.cli.output import table, to_json
from covey.errors import InvalidArgument
from proto import local_pb2, local_pb2_grpc

STDIN_CHUNK = 64 * 1024
INTERRUPTED_EXIT = 130      # as a shell's after Ctrl-C


def add_parser(subparsers) -> None:
    container = subparsers.add_parser("container", help="the containers on this node").add_subparsers(
        dest="container_cmd", required=True)

    ls = container.add_parser("ls", help="list containers")
    ls.add_argument("-a", "--all", action="store_true", help="also the ones that are not running")
    ls.add_argument("-q", "--quiet", action="store_true", help="only IDs")
    ls.add_argument("--format", choices=["table", "json"], default="table")
    ls.set_defaults(run=list_containers)

    inspect = container.add_parser("inspect", help="show a container in detail")
    inspect.add_argument("container", metavar="CONTAINER")
    inspect.set_defaults(run=inspect_container)

    logs = container.add_parser("logs", help="show a container's output")
    add_log_flags(logs)
    logs.add_argument("container", metavar="CONTAINER")
    logs.set_defaults(run=container_logs)

    exec_ = container.add_parser("exec", help="run a command in a running container")
    exec_.add_argument("-i", "--interactive", action="store_true", help="send stdin to the command")
    exec_.add_argument("-t", "--tty", action="store_true", help="give the command a pseudo-terminal")
    exec_.add_argument("-u", "--user", default="", metavar="USER[:GROUP]", help="names or numbers")
    exec_.add_argument("-e", "--env", action="append", default=[], metavar="KEY=VALUE")
    exec_.add_argument("-w", "--workdir", default="", metavar="DIR")
    exec_.add_argument("container", metavar="CONTAINER")
    exec_.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND [ARG...]")
    exec_.set_defaults(run=exec_in_container)


def _ago(seconds: float) -> str:
    delta = max(0, time.time() - seconds)
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if delta >= size:
            return f"{int(delta // size)} {unit} ago"
    return f"{int(delta)} seconds ago"


def _status(c: local_pb2.ContainerSummary) -> str:
    if c.status == "running":
        text = f"Up {_ago(c.started_at)[:-4]}"
        return f"{text} ({c.health})" if c.health else text
    if c.exited:
        return f"Exited ({c.exit_code}) {_ago(c.finished_at)}" + (" (OOM killed)" if c.oom_killed else "")
    return c.status.capitalize()


def _command(argv) -> str:
    """Docker's COMMAND: arguments with spaces in single quotes, 20 characters, quoted."""
    text = " ".join(argv[:1] + [f"'{a}'" if " " in a else a for a in argv[1:]])
    return json.dumps(text if len(text) <= 20 else text[:19] + "…", ensure_ascii=False)


def list_containers(conn, args) -> int:
    containers = conn.containers.List(local_pb2.ListContainersRequest(all=args.all)).containers
    if args.quiet:
        print("\n".join(c.id for c in containers))
    elif args.format == "json":
        print(to_json(containers))
    else:
        rows = [[c.id[:25], c.image, _command(list(c.command)), _ago(c.created_at), _status(c), c.name]
                for c in containers]
        print(table(["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "NAMES"], rows))
    return 0


def inspect_container(conn, args) -> int:
    print(conn.containers.Inspect(local_pb2.InspectContainerRequest(container=args.container)).json)
    return 0


# ---------------------------------------------------------------- exec

def exec_start(args) -> local_pb2.ExecStart:
    if not args.command:
        raise InvalidArgument("exec needs a command: covey container exec [OPTIONS] CONTAINER COMMAND [ARG...]")
    for item in args.env:
        if not item or item.startswith("="):
            raise InvalidArgument(f"invalid environment variable {item!r}: use KEY=VALUE")
    if args.workdir and not args.workdir.startswith("/"):
        raise InvalidArgument(f"invalid --workdir {args.workdir!r}: it must be an absolute path")
    if args.tty and args.interactive and not sys.stdin.isatty():
        raise InvalidArgument("the input device is not a TTY: leave out -t, or run from a terminal")
    start = local_pb2.ExecStart(container=args.container, command=args.command, env=args.env, user=args.user,
                                workdir=args.workdir, stdin=args.interactive, tty=args.tty)
    if args.tty:
        start.size.CopyFrom(_terminal_size())
    return start


def _terminal_size() -> local_pb2.TerminalSize:
    size = shutil.get_terminal_size()
    return local_pb2.TerminalSize(rows=size.lines, cols=size.columns)


async def stdin_chunks(fd: int) -> AsyncIterator[bytes]:
    """Our stdin as it comes. A daemon thread reads it: a read that never ends must not hold up
    our exit, and readiness alone can lie (a terminal said "readable" and the read then blocked
    the loop); a thread blocked in a read holds no lock of ours or of gRPC's."""
    loop, chunks = asyncio.get_running_loop(), asyncio.Queue[bytes]()

    def read() -> None:
        while True:
            try:
                chunk = os.read(fd, STDIN_CHUNK)
            except OSError:
                chunk = b""
            try:
                loop.call_soon_threadsafe(chunks.put_nowait, chunk)
            except RuntimeError:     # the loop is closed: we are done
                return
            if not chunk:
                return
    threading.Thread(target=read, name="stdin", daemon=True).start()
    while chunk := await chunks.get():
        yield chunk


async def send_input(call, start: local_pb2.ExecStart, chunks: AsyncIterator[bytes] | None) -> None:
    """The start, then stdin chunks (with -i); the end of stdin is the end of our writing."""
    await call.write(local_pb2.ExecInput(start=start))
    if chunks is not None:
        async for chunk in chunks:
            await call.write(local_pb2.ExecInput(stdin=chunk))
    if not start.tty:    # a terminal stays open for its new sizes
        await call.done_writing()


@contextlib.contextmanager
def _terminal(wanted: bool):
    """Our terminal in raw mode while the command has its own (keys go to it as they are)."""
    if not (wanted and sys.stdin.isatty()):
        yield
        return
    saved = termios.tcgetattr(sys.stdin.fileno())
    tty.setraw(sys.stdin.fileno())
    try:
        yield
    finally:
        termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, saved)


def exec_in_container(conn, args) -> int:
    """Docker's exec: the command's output as it comes, and its exit code as ours."""
    start = exec_start(args)
    with _terminal(args.tty):
        try:
            return asyncio.run(_exec(conn, start))
        except KeyboardInterrupt:
            return INTERRUPTED_EXIT


async def _exec(conn, start: local_pb2.ExecStart) -> int:
    """On grpc.aio: the sync API feeds a request stream from a thread of its own, which can be
    frozen holding the call's lock when we exit; the call's finalizer then waits forever."""
    async with conn.aio_channel() as channel:
        call = local_pb2_grpc.LocalContainersStub(channel).Exec()
        chunks = stdin_chunks(sys.stdin.fileno()) if start.stdin else None
        sending = asyncio.ensure_future(send_input(call, start, chunks))
        if start.tty and sys.stdin.isatty():
            def resize() -> None:
                asyncio.ensure_future(call.write(local_pb2.ExecInput(resize=_terminal_size())))
            asyncio.get_running_loop().add_signal_handler(signal.SIGWINCH, resize)
        code = 0
        try:
            async for output in call:
                code = _show(output, code)
        finally:
            sending.cancel()
            await asyncio.gather(sending, return_exceptions=True)   # writing fails once the call is over
        return code


def _show(output: local_pb2.ExecOutput, code: int) -> int:
    part = output.WhichOneof("part")
    if part == "exit_code":
        return output.exit_code
    stream = sys.stdout if part == "stdout" else sys.stderr
    stream.buffer.write(getattr(output, part))
    stream.buffer.flush()
    return code
