"""What the benches on a real lab swarm share: their images (iperf3 from the host, lighttpd from
its Debian package, each with its shared libraries), a task's namespace, percentiles and where
results go. The swarm itself is tests/e2e/swarmtools.py's, the task helpers test_overlay's."""
from __future__ import annotations

import json
import time
from pathlib import Path

import benchpaths  # noqa: F401  (first: puts the project on sys.path)

from deploy.lab import Host, Lab  # noqa: E402
from tests.e2e.swarmtools import REGISTRY  # noqa: E402
from tests.support.images import TestImage, deb_root, with_libraries  # noqa: E402

IPERF = f"{REGISTRY}/covey/iperf3:1"
LIGHTTPD = f"{REGISTRY}/covey/lighttpd:1"
IPERF_PORT = 5201
HTTP_PORT = 8080
RESULTS = Path("/tmp/covey-bench")
LIGHTTPD_CONF = """server.document-root = "/www"
server.port = {port}
server.max-keep-alive-requests = 1000000
server.max-connections = 4096
"""
INDEX = "covey bench\n"


def iperf_image() -> TestImage:
    """iperf3 as the host has it (deploy/debian-packages installs it); `iperf3 -s` by default."""
    return TestImage("covey/iperf3", "1", {}, {"Cmd": ["/usr/bin/iperf3", "-s"]},
                     with_libraries("/usr/bin/iperf3", "/usr/bin/iperf3"))


def lighttpd_root(workdir: Path) -> Path:
    """lighttpd unpacked from its Debian package: never installed (nor started) on the host."""
    return deb_root(workdir, "lighttpd")


def lighttpd_image(workdir: Path) -> TestImage:
    """A static file server with keep-alive (busybox httpd closes every connection)."""
    binary = lighttpd_root(workdir) / "usr/sbin/lighttpd"
    return TestImage("covey/lighttpd", "1",
                     {"www/index.html": INDEX, "etc/lighttpd.conf": LIGHTTPD_CONF.format(port=HTTP_PORT)},
                     {"Cmd": ["/usr/sbin/lighttpd", "-D", "-f", "/etc/lighttpd.conf"]},
                     with_libraries(binary, "/usr/sbin/lighttpd"))


def bench_images(workdir: Path) -> list[TestImage]:
    return [iperf_image(), lighttpd_image(workdir)]


def task_netns(lab: Lab, host: Host, task_id: str) -> str:
    """The path of a task's network namespace, as the host's coveyd named it."""
    path = Path(f"/run/netns/{lab.net_prefix(host)}c{task_id}")
    if not path.exists():
        raise RuntimeError(f"task {task_id} has no namespace on {host.name} ({path})")
    return str(path)


def pct(values: list[float], p: float) -> float:
    """The p-th percentile, nearest rank."""
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * len(s) + 0.5) - 1))]


def summary(values: list[float], digits: int = 1) -> dict[str, float]:
    return {"p50": round(pct(values, 50), digits), "p99": round(pct(values, 99), digits),
            "max": round(max(values), digits), "n": len(values)}


def write_result(name: str, result: dict, out: str | None) -> None:
    text = json.dumps(result, indent=2)
    print(text)
    path = Path(out) if out else RESULTS / f"{name}-{int(time.time())}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")
    print(f"written to {path}")
