"""The per-container shim: `python3 -m worker.executor.shim ARGS`.

Why a shim: runc's detached container inherits runc's stdio, and its exit status goes to
whoever reaps it. This small process (in its own session, outlives a coveyd restart) is a
child subreaper, runs `runc create` with pipes it owns as the container's stdout/stderr,
writes what comes through them to rotated, timestamped log files, reaps the container's
init and records its exit code (and whether the kernel OOM-killed it) in exit.json.
The daemon never holds a pipe the container could keep open.

Protocol with the launcher: one JSON line on stdout after `runc create` ({"ok": true,
"pid": N} or {"ok": false, "error": "..."}), then stdout is closed.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import selectors
import signal
import subprocess
import sys
import time

from .logfile import LOG_NAME, LogWriter

PR_SET_CHILD_SUBREAPER = 36
CHUNK = 16 * 1024            # Docker splits lines longer than 16 KiB into partial entries


def _report(msg: dict) -> None:
    os.write(1, (json.dumps(msg) + "\n").encode())
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)


def _runc_error(cdir: str, stderr_tail: str) -> str:
    """runc's own message: the last 'error' record of its JSON log, else its stderr."""
    try:
        with open(os.path.join(cdir, "runc.log")) as f:
            errors = [json.loads(line).get("msg", "") for line in f if '"error"' in line]
        if errors:
            return errors[-1]
    except (OSError, ValueError):
        pass
    return stderr_tail.strip() or "runc create failed"


def _oom_killed(memory_cgroup: str) -> bool:
    try:
        with open(os.path.join(memory_cgroup, "memory.oom_control")) as f:
            return any(line.split()[0] == "oom_kill" and int(line.split()[1]) > 0 for line in f)
    except (OSError, IndexError, ValueError):
        return False


class Pump:
    """Turns the bytes of one stream into log entries, line by line."""

    def __init__(self, stream: str, writer: LogWriter):
        self.stream, self.writer, self.buf = stream, writer, b""

    def feed(self, data: bytes) -> None:
        self.buf += data
        while True:
            nl = self.buf.find(b"\n")
            if nl < 0:
                break
            self._emit(self.buf[:nl + 1])
            self.buf = self.buf[nl + 1:]
        while len(self.buf) >= CHUNK:
            self._emit(self.buf[:CHUNK])
            self.buf = self.buf[CHUNK:]

    def flush(self) -> None:
        if self.buf:
            self._emit(self.buf)
            self.buf = b""

    def _emit(self, raw: bytes) -> None:
        self.writer.write(self.stream, raw.decode("utf-8", errors="replace"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="worker.executor.shim")
    p.add_argument("--runc", default="runc")
    p.add_argument("--root", required=True)
    p.add_argument("--id", required=True)
    p.add_argument("--dir", required=True)            # the container dir (bundle, logs, state)
    p.add_argument("--memory-cgroup", default="")
    p.add_argument("--max-size", type=int, default=0)
    p.add_argument("--max-files", type=int, default=1)
    p.add_argument("--create-timeout", type=float, default=30.0)
    p.add_argument("--drain-timeout", type=float, default=2.0)
    a = p.parse_args(argv)

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    with open(os.path.join(a.dir, "shim.pid"), "w") as f:
        f.write(str(os.getpid()))

    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    pid_file = os.path.join(a.dir, "init.pid")
    create = subprocess.Popen(
        [a.runc, "--root", a.root, "--log", os.path.join(a.dir, "runc.log"), "--log-format",
         "json", "create", "--bundle", a.dir, "--pid-file", pid_file, a.id],
        stdin=subprocess.DEVNULL, stdout=out_w, stderr=err_w, cwd=a.dir)
    os.close(out_w)
    os.close(err_w)
    try:
        rc = create.wait(a.create_timeout)
    except subprocess.TimeoutExpired:
        create.kill()
        create.wait()
        rc = -1
    if rc != 0:
        os.set_blocking(err_r, False)
        try:
            tail = os.read(err_r, 65536).decode(errors="replace")
        except BlockingIOError:
            tail = ""
        _report({"ok": False, "error": _runc_error(a.dir, tail) if rc > 0 else
                 f"runc create timed out after {a.create_timeout:g}s"})
        return 1
    with open(pid_file) as f:
        init_pid = int(f.read().strip())
    _report({"ok": True, "pid": init_pid})
    return serve(a, init_pid, out_r, err_r)


def serve(a, init_pid: int, out_r: int, err_r: int) -> int:
    writer = LogWriter(os.path.join(a.dir, LOG_NAME), a.max_size, a.max_files)
    wake_r, wake_w = os.pipe()
    for fd in (wake_r, wake_w):
        os.set_blocking(fd, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, signal.SIG_IGN)   # only the container's end ends the shim
    sel = selectors.DefaultSelector()
    pumps = {out_r: Pump("stdout", writer), err_r: Pump("stderr", writer)}
    for fd in pumps:
        sel.register(fd, selectors.EVENT_READ)
    sel.register(wake_r, selectors.EVENT_READ)
    status: int | None = None            # init's wait status, once reaped
    deadline: float | None = None
    while pumps:
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        events = sel.select(timeout)
        if not events and deadline is not None:
            break                          # a leftover process holds the pipes: stop waiting
        for key, _ in events:
            fd = key.fd
            if fd == wake_r:
                while True:
                    try:
                        if not os.read(wake_r, 512):
                            break
                    except BlockingIOError:
                        break
                status = _reap(init_pid, status)
                if status is not None and deadline is None:
                    deadline = time.monotonic() + a.drain_timeout
                continue
            data = os.read(fd, 65536)
            if data:
                pumps[fd].feed(data)
            else:
                pumps.pop(fd).flush()
                sel.unregister(fd)
                os.close(fd)
    for pump in pumps.values():
        pump.flush()
    while status is None:                  # pipes closed first: the exit is close behind
        try:
            pid, st = os.waitpid(-1, 0)
        except ChildProcessError:
            break                          # init was not ours to reap: exit code unknown
        if pid == init_pid:
            status = st
    writer.close()
    code = os.waitstatus_to_exitcode(status) if status is not None else 0
    result = {"exit_code": -1 if status is None else (128 - code if code < 0 else code),
              "signal": -code if code < 0 else 0,
              "oom_killed": _oom_killed(a.memory_cgroup) if a.memory_cgroup else False,
              "finished_at": time.time()}
    tmp = os.path.join(a.dir, "exit.json.tmp")
    with open(tmp, "w") as f:
        json.dump(result, f)
    os.replace(tmp, os.path.join(a.dir, "exit.json"))
    return 0


def _reap(init_pid: int, status: int | None) -> int | None:
    """Reap every exited child (orphans come to us as subreaper); keep init's status."""
    while True:
        try:
            pid, st = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return status
        if pid == 0:
            return status
        if pid == init_pid:
            status = st


if __name__ == "__main__":
    sys.exit(main())
