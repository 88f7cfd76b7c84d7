#!/usr/bin/env python3
"""The lab: many Covey hosts on one machine (docs/design.md, "The lab and the tests").

A host is a network namespace with one interface (eth0) on an underlay switch,
a bridge that lives in a namespace of its own: no lab address or route ever
touches the root namespace. Every namespace and interface is named with a
per-run prefix and removed by name; every process is ended by the PID the lab
recorded when it started it.

    python3 deploy/lab.py up --hosts 3            # hosts only; prints the prefix
    python3 deploy/lab.py swarm --hosts 3         # hosts + coveyd + a swarm, then `node ls`
    python3 deploy/lab.py covey PREFIX 1 node ls  # run covey against host 1
    python3 deploy/lab.py down PREFIX             # end its processes, remove everything
"""
import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

DEFAULT_BASE = Path(os.environ.get("COVEY_LAB_DIR", "/tmp/covey-lab"))
REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script, only deploy/ is there
    sys.path.insert(0, str(REPO))

from covey.addr import API_PORT  # noqa: E402
from tests.support.poll import wait_until  # noqa: E402
from worker.executor.executor import cgroup_parent_for, remove_cgroup_parent  # noqa: E402


def in_netns(netns: str) -> list[str]:
    """The argv prefix that runs a command in a lab host's network namespace, and only that:
    `ip netns exec` would also remount /sys, hiding the cgroup mounts runc needs."""
    return ["nsenter", f"--net=/run/netns/{netns}"]


def fresh_prefix(base: Path = DEFAULT_BASE) -> str:
    """A random prefix no lab has used under `base` and no namespace carries: the random
    part is short (interface names), so with hundreds of old lab directories kept, a
    reused one would start on another lab's data, and `down` remove its namespaces."""
    while True:
        prefix = "cv" + secrets.token_hex(2)
        netns = os.listdir("/run/netns") if os.path.isdir("/run/netns") else []
        if not (base / prefix).exists() and not any(n.startswith(prefix) for n in netns):
            return prefix


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@dataclass
class Host:
    index: int
    netns: str
    addr: str
    dir: Path

    @property
    def name(self) -> str:
        return f"host{self.index}"

    @property
    def data_dir(self) -> Path:
        return self.dir / "data"

    @property
    def socket(self) -> Path:
        return self.dir / "run" / "covey.sock"

    @property
    def log_file(self) -> Path:
        return self.dir / "coveyd.log"


class Lab:
    def __init__(self, hosts: int, prefix: str | None = None, base: Path = DEFAULT_BASE,
                 subnet: str = "10.1.0", coveyd_settings: tuple[str, ...] = (),
                 coveyd_args: tuple[str, ...] = ()):
        self.prefix = prefix or fresh_prefix(base)
        if len(self.prefix) > 8:
            raise ValueError("the lab prefix must be at most 8 characters (interface names are short)")
        self.dir = base / self.prefix
        self.switch = f"{self.prefix}-sw"
        self.subnet = subnet
        self.resolver = Host(0, f"{self.prefix}-dns", f"{subnet}.{RESOLVER_HOST}", self.dir / "dns")
        self.hosts = [Host(i, f"{self.prefix}-h{i}", f"{subnet}.{i}", self.dir / f"host{i}")
                      for i in range(1, hosts + 1)]
        self.coveyd_settings = coveyd_settings
        self.coveyd_args = coveyd_args  # more coveyd flags, e.g. --insecure-registry
        self.pids: dict[int, int] = {}         # host index -> coveyd PID
        self.helper_pids: dict[str, int] = {}  # e.g. "registry" -> PID

    # ------------------------------------------------------------ network

    def up(self) -> "Lab":
        self.dir.mkdir(parents=True, exist_ok=True)
        self._save()
        _ip("netns", "add", self.switch)
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.switch, "link", "set", "br0", "up")
        for host in self.hosts:
            self._add_host(host)
        return self

    def _add_host(self, host: Host) -> None:
        port = f"{self.prefix}-h{host.index}" if host.index else f"{self.prefix}-dns"
        _ip("netns", "add", host.netns)
        _ip("-n", host.netns, "link", "set", "lo", "up")
        # Both ends are created inside lab namespaces: nothing passes through the root one.
        _ip("-n", self.switch, "link", "add", port, "type", "veth", "peer", "name", "eth0",
            "netns", host.netns)
        _ip("-n", self.switch, "link", "set", port, "master", "br0", "up")
        _ip("-n", host.netns, "addr", "add", f"{host.addr}/24", "dev", "eth0")
        _ip("-n", host.netns, "link", "set", "eth0", "up")
        for sub in ("data", "run"):
            (host.dir / sub).mkdir(parents=True, exist_ok=True, mode=0o700)

    def down(self) -> None:
        """End every process the lab started, then remove its namespaces by name."""
        for index in list(self.pids):
            self.stop_coveyd(self.hosts[index - 1])
        for name, pid in list(self.helper_pids.items()):
            _end(pid, 15.0, name)
            del self.helper_pids[name]
        self.remove_containers()
        self.remove_cgroups()
        # The hosts, the switch, the resolver, and what each coveyd's overlay made (its
        # --net-prefix starts with the lab's): every namespace named with the prefix.
        for netns in sorted(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else []:
            if netns.startswith(self.prefix):
                subprocess.run(["ip", "netns", "del", netns], capture_output=True)
        self._save()

    def remove_containers(self, hosts: list[Host] | None = None) -> list[str]:
        """Force-remove every runc container of the lab's hosts (or of `hosts`), by the lab's own
        runc roots, and unmount their root filesystems: what a coveyd leaves running (coveyd
        keeps containers across its restarts; a node that left, or a failed test) must not
        outlive the lab. Returns "hostN:ID" of what it removed."""
        removed = []
        for host in self.hosts if hosts is None else hosts:
            runc = ["runc", "--root", str(host.socket.parent / "runc")]  # coveyd's --run-dir default
            listed = subprocess.run([*runc, "list", "-q"], check=False, capture_output=True, text=True)
            for cid in listed.stdout.split() if listed.returncode == 0 else []:
                subprocess.run([*runc, "delete", "-f", cid], check=False, capture_output=True)
                removed.append(f"{host.name}:{cid}")
            # the containers' roots, and the tmpfs of their secrets (coveyd's --run-dir default)
            prefixes = (f"{host.data_dir / 'containers'}/", f"{host.socket.parent / 'executor' / 'files'}/")
            for mount in reversed(Path("/proc/self/mounts").read_text().splitlines()):
                if mount.split()[1].startswith(prefixes):
                    subprocess.run(["umount", mount.split()[1]], check=False, capture_output=True)
        return removed

    def remove_cgroups(self) -> None:
        """rmdir each host's coveyd cgroup parent: coveyd keeps it across its restarts, and runc
        removes only the containers' own cgroups below it."""
        for host in self.hosts:
            remove_cgroup_parent(cgroup_parent_for(host.data_dir))

    def cut(self, host: Host) -> None:
        """Cut the host off the underlay (its eth0 down): a network partition of that one host;
        its processes go on."""
        _ip("-n", host.netns, "link", "set", "eth0", "down")

    def heal(self, host: Host) -> None:
        """Undo `cut`: the host's eth0 up again."""
        _ip("-n", host.netns, "link", "set", "eth0", "up")

    def run_in(self, host: Host, argv: list[str], **kwargs) -> subprocess.CompletedProcess:
        """Run a command inside a host's network namespace."""
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        return subprocess.run([*in_netns(host.netns), *argv], **kwargs)

    # ------------------------------------------------------------ coveyd

    def start_coveyd(self, host: Host, timeout: float = 30.0, env: dict | None = None) -> int:
        """Start coveyd on `host` (with `env` added to its environment) and wait until it listens."""
        argv = [*in_netns(host.netns), sys.executable, "-m", "coveyd.daemon",
                "--data-dir", str(host.data_dir), "--socket", str(host.socket),
                "--log-file", str(host.log_file), "--hostname", host.name]
        argv += ["--net-prefix", self.net_prefix(host), "--dns-upstream", self.resolver.addr]
        for setting in self.coveyd_settings:
            argv += ["--set", setting]
        argv += list(self.coveyd_args)
        host.socket.unlink(missing_ok=True)
        with open(host.dir / "coveyd.out", "ab") as out:
            # nsenter execs the daemon: this PID is coveyd's own.
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
                                    start_new_session=True, env={**os.environ, **(env or {})})
        self.pids[host.index] = proc.pid
        self._save()
        wait_until(lambda: host.socket.exists() or proc.poll() is not None, timeout,
                   what=f"coveyd on {host.name} to listen")
        if proc.poll() is not None:
            raise RuntimeError(f"coveyd on {host.name} exited with {proc.returncode}; see {host.log_file}")
        return proc.pid

    def net_prefix(self, host: Host) -> str:
        """The host's coveyd names its overlay namespaces, links and nft tables with this."""
        return f"{self.prefix.replace('-', '')}h{host.index}x"

    def start_resolver(self, records: dict[str, str]) -> None:
        """The lab's upstream DNS (deploy/labdns.py) in a namespace of its own on the
        underlay: the embedded DNS of every coveyd forwards names it does not know there,
        so no query ever leaves the lab. `records`: name -> IPv4 address."""
        if not Path(f"/run/netns/{self.resolver.netns}").exists():
            self.resolver.dir.mkdir(parents=True, exist_ok=True)
            self._add_host(self.resolver)
        self.start_helper("resolver", self.resolver,
                          [sys.executable, "-m", "deploy.labdns", "--listen", self.resolver.addr,
                           *(f"--record={n}={a}" for n, a in records.items())], ready=b"listening")

    def start_helper(self, name: str, host: Host, argv: list[str], ready: bytes | None = None) -> int:
        """A process of the lab's inside a host's namespace (a server for tests); `down` ends it
        by its PID. With `ready`, waits until its output shows that text."""
        if name in self.helper_pids:
            raise RuntimeError(f"the lab's {name} is running already")
        log_file = self.dir / f"{name}.log"
        with open(log_file, "ab") as out:
            proc = subprocess.Popen([*in_netns(host.netns), *argv], stdout=out, stderr=subprocess.STDOUT,
                                    cwd=REPO, start_new_session=True)
        self.helper_pids[name] = proc.pid
        self._save()
        if ready is not None:
            wait_until(lambda: ready in log_file.read_bytes() or proc.poll() is not None, 10.0,
                       what=f"the lab's {name} to start")
        if proc.poll() is not None:
            raise RuntimeError(f"the lab's {name} exited with {proc.returncode}; see {log_file}")
        return proc.pid

    def stop_coveyd(self, host: Host, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        """Signal the coveyd the lab started on `host` and wait until it is gone."""
        pid = self.pids.pop(host.index, None)
        if pid is None:
            return
        _end(pid, timeout, "coveyd", sig)
        self._save()

    def coveyd_running(self, host: Host) -> bool:
        """Whether the coveyd the lab started on `host` is still there (reaped if it exited)."""
        pid = self.pids.get(host.index)
        return pid is not None and _alive(pid)

    def pause_coveyd(self, host: Host) -> None:
        """Freeze the coveyd the lab started on `host` (SIGSTOP): alive, its sockets open, silent."""
        os.kill(self.pids[host.index], signal.SIGSTOP)

    def resume_coveyd(self, host: Host) -> None:
        """Undo `pause_coveyd` (SIGCONT)."""
        os.kill(self.pids[host.index], signal.SIGCONT)

    def covey(self, host: Host, *args: str, check: bool = True, timeout: float = 60.0,
              env: dict | None = None, stdin: str | None = None) -> subprocess.CompletedProcess:
        """Run the covey CLI against `host`'s local socket (`stdin`: what it reads there)."""
        argv = [sys.executable, "-m", "covey.cli.main", "-H", f"unix://{host.socket}", *args]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=REPO,
                                env={**os.environ, **(env or {})}, input=stdin)
        if check and result.returncode != 0:
            raise RuntimeError(f"covey {' '.join(args)} on {host.name} failed ({result.returncode}): "
                               f"{result.stderr.strip()}")
        return result

    # ------------------------------------------------------------ a whole swarm

    def form_swarm(self, heartbeat: str | None = None, managers: int = 1, members: int | None = None) -> str:
        """coveyd on every host; host1 inits, the next `managers - 1` hosts join as managers,
        the rest of the first `members` hosts (default: all) as workers; the hosts after
        them run coveyd outside the swarm. Without `heartbeat`, the swarm has the product's
        default period (no --dispatcher-heartbeat). Returns init's output."""
        for host in self.hosts:
            self.start_coveyd(host)
        first = self.hosts[0]
        period = ["--dispatcher-heartbeat", heartbeat] if heartbeat else []
        init = self.covey(first, "swarm", "init", "--advertise-addr", first.addr, *period).stdout
        tokens = {role: self.covey(first, "swarm", "join-token", "-q", role).stdout.strip()
                  for role in ("worker", "manager")}
        for i, host in enumerate(self.hosts[1:members or len(self.hosts)], start=1):
            role = "manager" if i < managers else "worker"
            self.covey(host, "swarm", "join", "--token", tokens[role], f"{first.addr}:{API_PORT}")
        return init

    # ------------------------------------------------------------ state file

    def _save(self) -> None:
        if self.dir.exists():
            state = {"prefix": self.prefix, "hosts": len(self.hosts), "pids": self.pids,
                     "helper_pids": self.helper_pids,
                     "subnet": self.hosts[0].addr.rsplit(".", 1)[0] if self.hosts else ""}
            (self.dir / "lab.json").write_text(json.dumps(state))

    @classmethod
    def load(cls, prefix: str, base: Path = DEFAULT_BASE) -> "Lab":
        state = json.loads((base / prefix / "lab.json").read_text())
        lab = cls(state["hosts"], prefix, base, state["subnet"])
        lab.pids = {int(k): v for k, v in state["pids"].items()}
        lab.helper_pids = state.get("helper_pids", {})
        return lab


def _end(pid: int, timeout: float, what: str, sig: int = signal.SIGTERM) -> None:
    """Signal a process the lab started, and wait until it is gone (SIGKILL after `timeout`).
    SIGCONT follows the signal, so that a paused process (pause_coveyd) acts on it too."""
    _signal(pid, sig)
    _signal(pid, signal.SIGCONT)
    try:
        wait_until(lambda: not _alive(pid), timeout, 0.05, f"{what} {pid} to exit")
    except TimeoutError:
        _signal(pid, signal.SIGKILL)
        wait_until(lambda: not _alive(pid), timeout, 0.05, f"{what} {pid} to die")


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)  # reap it if it is our child
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


RESOLVER_HOST = 250                  # the lab resolver's address on the underlay: SUBNET.250
EXAMPLE_REGISTRY = "10.1.0.1:5000"  # on host1 (the default subnet)


def start_example_registry(lab: Lab) -> None:
    """A real registry (Debian's docker-registry) on host1, holding small example images built
    from busybox-static; its PID is the lab's, so `down` ends it."""
    from tests.support.images import build_and_push
    from tests.support.registry import Registry
    first = lab.hosts[0]
    registry = Registry(lab.dir / "registry", host=first.addr, netns=first.netns).start()
    lab.helper_pids["registry"] = registry.proc.pid
    lab._save()
    build_and_push(lab.dir / "images", registry.address, prefix=registry.in_netns())


EXAMPLE_STACK = REPO / "deploy" / "examples" / "shop.yml"
EXAMPLE_PORT = 8080


def deploy_example(lab: Lab) -> None:
    """The example stack (deploy/examples/shop.yml) with `covey stack deploy`, then a request
    through the routing mesh: to host1's address from host2, answered by a front on any host,
    which asks the backend by name over the stack's overlay network."""
    first, other = lab.hosts[0], lab.hosts[-1]
    print(f"$ covey stack deploy -c {EXAMPLE_STACK.relative_to(REPO)} shop")
    print(lab.covey(first, "stack", "deploy", "-c", str(EXAMPLE_STACK), "shop", timeout=300).stdout)
    print("$ covey stack services shop\n" + lab.covey(first, "stack", "services", "shop").stdout)
    url = f"http://{first.addr}:{EXAMPLE_PORT}/cgi-bin/front"
    answer = lab.run_in(other, ["timeout", "10", "busybox", "wget", "-qO-", url])
    if answer.returncode != 0:
        raise RuntimeError(f"the example stack did not answer at {url} from {other.name}: {answer.stderr.strip()}")
    print(f"$ wget -qO- {url}   # on {other.name}, through the routing mesh\n{answer.stdout}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Covey's multi-host lab on one machine")
    sub = parser.add_subparsers(dest="cmd", required=True)
    for name in ("up", "swarm"):
        p = sub.add_parser(name)
        p.add_argument("--hosts", type=int, default=3)
        p.add_argument("--prefix")
        p.add_argument("--heartbeat", help="dispatcher heartbeat period, e.g. 1s (default: the product's)")
        if name == "swarm":
            p.add_argument("--example", action="store_true",
                           help="also a registry on host1 with example images, and the example stack deployed")
    down = sub.add_parser("down")
    down.add_argument("prefix")
    down.add_argument("--keep-files", action="store_true")
    covey = sub.add_parser("covey")
    covey.add_argument("prefix")
    covey.add_argument("host", type=int)
    covey.add_argument("args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)

    if args.cmd == "down":
        lab = Lab.load(args.prefix)
        lab.down()
        if not args.keep_files:
            shutil.rmtree(lab.dir, ignore_errors=True)
        print(f"lab {args.prefix} removed")
        return 0
    if args.cmd == "covey":
        lab = Lab.load(args.prefix)
        result = lab.covey(lab.hosts[args.host - 1], *args.args, check=False)
        sys.stdout.write(result.stdout)
        sys.stderr.write(result.stderr)
        return result.returncode

    example = args.cmd == "swarm" and args.example
    lab = Lab(args.hosts, args.prefix, coveyd_args=("--insecure-registry", EXAMPLE_REGISTRY) if example else ())
    try:
        lab.up()
        if example:
            start_example_registry(lab)
        if args.cmd == "swarm":
            lab.form_swarm(args.heartbeat)
            first = lab.hosts[0]
            wait_until(lambda: lab.covey(first, "node", "ls").stdout.count("Ready") == len(lab.hosts),
                       60, 0.2, "every node to be Ready")
            print(lab.covey(first, "node", "ls").stdout)
        if example:
            deploy_example(lab)
    except BaseException:
        lab.down()
        raise
    print(f"lab {lab.prefix}: {len(lab.hosts)} hosts, files in {lab.dir}")
    print(f"  covey on host 1:  python3 deploy/lab.py covey {lab.prefix} 1 node ls")
    print(f"  remove it:        python3 deploy/lab.py down {lab.prefix}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
