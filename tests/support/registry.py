"""A real registry for tests: Debian's docker-registry (distribution v2.8) on loopback, with
filesystem storage in a temp dir and optional htpasswd basic auth."""
from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import warnings
from pathlib import Path

from tests.support.poll import wait_until

REGISTRY_BIN = "/usr/bin/docker-registry"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bcrypt_hash(password: str) -> str:
    """htpasswd needs bcrypt: Debian's libcrypt has it (via the crypt module), else the
    bcrypt package."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt
        hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH))
        if hashed and hashed.startswith("$2"):
            return hashed
    except ImportError:
        pass
    import bcrypt  # the fallback, not a dependency: Debian's crypt has bcrypt
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()


class Registry:
    def __init__(self, workdir: Path, users: dict[str, str] | None = None,
                 host: str = "127.0.0.1", port: int | None = None, netns: str | None = None):
        """`netns`: serve inside this lab host's network namespace (on its address)."""
        self.workdir = Path(workdir)
        self.users = users
        self.netns = netns
        self.host, self.port = host, port or (5000 if netns else free_port())
        self.proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def _config(self) -> Path:
        storage = self.workdir / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        lines = ["version: 0.1", "log:", "  level: warn", "storage:", "  filesystem:",
                 f"    rootdirectory: {storage}", "  delete:", "    enabled: true",
                 "http:", f"  addr: {self.address}"]
        if self.users:
            htpasswd = self.workdir / "htpasswd"
            htpasswd.write_text("".join(f"{u}:{bcrypt_hash(p)}\n" for u, p in self.users.items()))
            lines += ["auth:", "  htpasswd:", "    realm: covey-test", f"    path: {htpasswd}"]
        path = self.workdir / "config.yml"
        path.write_text("\n".join(lines) + "\n")
        return path

    def start(self, timeout: float = 20.0) -> Registry:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self._config()
        logf = open(self.workdir / "registry.log", "ab")
        self.proc = subprocess.Popen([*self.in_netns(), REGISTRY_BIN, "serve", str(config)], stdin=subprocess.DEVNULL,
                                     stdout=logf, stderr=logf, start_new_session=True)
        logf.close()
        try:
            wait_until(lambda: self.proc.poll() is not None or self.answers(), timeout, 0.05,
                       f"docker-registry to answer on {self.address}")
        except TimeoutError:
            self.stop()
            raise
        if self.proc.poll() is not None:
            raise RuntimeError(f"docker-registry exited with {self.proc.returncode}: "
                               f"{(self.workdir / 'registry.log').read_text()[-2000:]}")
        return self

    def in_netns(self) -> list[str]:
        """The argv prefix that runs a command where this registry is reachable."""
        return ["nsenter", f"--net=/run/netns/{self.netns}"] if self.netns else []

    def answers(self) -> bool:
        if self.netns:  # ask from inside the namespace: the root one cannot reach it
            probe = (f"import urllib.request as u, urllib.error as e\n"
                     f"try: u.urlopen('http://{self.address}/v2/', timeout=1)\n"
                     f"except e.HTTPError as x: raise SystemExit(x.code != 401)")
            return subprocess.run([*self.in_netns(), sys.executable, "-c", probe],
                                  capture_output=True).returncode == 0
        try:
            urllib.request.urlopen(f"http://{self.address}/v2/", timeout=1).close()
            return True
        except urllib.error.HTTPError as e:
            return e.code == 401            # up, and wants credentials
        except OSError:
            return False

    def tags(self, repo: str, auth: tuple[str, str] | None = None) -> list[str]:
        import json
        req = urllib.request.Request(f"http://{self.address}/v2/{repo}/tags/list")
        if auth:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            req.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.load(r).get("tags") or []

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None
