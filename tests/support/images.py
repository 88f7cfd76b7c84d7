"""Test images, built by hand as OCI layouts from the static busybox (no base images), and
pushed to a test registry with skopeo.

Every image has one shared base layer (busybox with its applet links, /etc/passwd with root,
app (1000) and nobody, /tmp) and a small layer of its own. An image that needs a real program
(iperf3, lighttpd) takes it from the host or from a Debian package (`deb_root`) with the shared
libraries it links (`with_libraries`)."""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import platform
import re
import subprocess
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

BUSYBOX = "/usr/bin/busybox"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
PASSWD = ("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n"
          "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
GROUP = "root:x:0:\napp:x:1000:\nextra:x:2000:app\nnogroup:x:65534:\n"
HTTPD_CMD = ["httpd", "-f", "-p", "8080", "-h", "/www"]
FRONT_CGI = ('#!/bin/sh\nprintf "Content-Type: text/plain\\r\\n\\r\\n"\n'
             'echo "front $(hostname) asked api, which said: $(wget -qO- http://api:8080/cgi-bin/id)"\n')
WHOAMI_CGI = '#!/bin/sh\nprintf "Content-Type: text/plain\\r\\n\\r\\n%s %s\\n" "$(hostname)" "$REMOTE_ADDR"\n'


@dataclass
class TestImage:
    repo: str                        # e.g. "covey/httpd"
    tag: str
    files: dict[str, str] = field(default_factory=dict)    # path in image -> content
    config: dict = field(default_factory=dict)             # OCI "config" (Cmd, Env, ...)
    host_files: dict[str, str] = field(default_factory=dict)  # path in image -> a file on this host


LDD_LINE = re.compile(r"(?:=>\s*)?(/\S+)\s+\(0x")   # "libc.so.6 => /lib/.../libc.so.6 (0x...)"
APT_TIMEOUT = 120.0     # s: apt-get download of a few packages


def with_libraries(binary: str | Path, at: str) -> dict[str, str]:
    """host_files for a dynamically linked program: the binary at `at` in the image and every
    shared library `ldd` resolves for it (the loader included), each at its host path."""
    result = subprocess.run(["ldd", str(binary)], capture_output=True, text=True)
    if result.returncode != 0 or "not found" in result.stdout:
        raise RuntimeError(f"ldd {binary}: cannot resolve its libraries: {result.stdout}{result.stderr}")
    files = {at.lstrip("/"): str(binary)}
    for line in result.stdout.splitlines():
        match = LDD_LINE.search(line)
        if match:
            files[match.group(1).lstrip("/")] = match.group(1)
    return files


def deb_root(workdir: Path, *packages: str) -> Path:
    """The packages' files unpacked under one directory (`apt-get download` and `dpkg -x`),
    without installing them on the host; downloaded once per workdir."""
    root, debs = Path(workdir) / "root", Path(workdir) / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    missing = [p for p in packages if not list(debs.glob(f"{p}_*.deb"))]
    if missing:
        subprocess.run(["apt-get", "download", *missing], cwd=debs, check=True, capture_output=True,
                       timeout=APT_TIMEOUT)
    for package in packages:
        (deb,) = debs.glob(f"{package}_*.deb")
        subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True, capture_output=True)
    return root


def standard_images() -> list[TestImage]:
    httpd = [TestImage("covey/httpd", v, {"www/index.html": f"covey httpd {v}\n"},
                       {"Cmd": HTTPD_CMD, "ExposedPorts": {"8080/tcp": {}}})
             for v in ("v1", "v2")]
    return httpd + [
        TestImage("covey/exit", "1", {}, {
            "Entrypoint": ["/bin/sh", "-c", "echo exiting with $EXIT_CODE; exit $EXIT_CODE"],
            "Env": ["EXIT_CODE=3"]}),
        TestImage("covey/defaults", "1", {"work/marker": "workdir\n"}, {
            "Entrypoint": ["/bin/echo", "entry"], "Cmd": ["from-image-cmd"],
            "Env": ["FOO=image-foo", "BAR=image-bar"], "WorkingDir": "/work", "User": "app"}),
        TestImage("covey/busybox", "1", {}, {"Cmd": ["sh"]}),
        # Answers who served a request and whom it saw: "<hostname> <client address>".
        TestImage("covey/whoami", "1", {"www/index.html": "whoami\n", "www/cgi-bin/id": WHOAMI_CGI},
                  {"Cmd": HTTPD_CMD, "ExposedPorts": {"8080/tcp": {}}}),
        # The example stack's front: asks the service `api` (by name, over the overlay) who it is.
        TestImage("covey/front", "1", {"www/index.html": "front\n", "www/cgi-bin/front": FRONT_CGI},
                  {"Cmd": HTTPD_CMD, "ExposedPorts": {"8080/tcp": {}}}),
    ]


def _arch() -> str:
    m = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(m, m)


def _tar(add) -> tuple[bytes, str]:
    """A gzipped tar with fixed times (stable digests); returns (blob, diff_id)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        add(tar)
    data = raw.getvalue()
    gz = io.BytesIO()
    with gzip.GzipFile(fileobj=gz, mode="wb", mtime=0) as g:
        g.write(data)
    return gz.getvalue(), "sha256:" + hashlib.sha256(data).hexdigest()


def _add_dir(tar, path: str, mode: int = 0o755) -> None:
    ti = tarfile.TarInfo(path)
    ti.type, ti.mode = tarfile.DIRTYPE, mode
    tar.addfile(ti)


def _add_file(tar, path: str, data: bytes, mode: int = 0o644) -> None:
    ti = tarfile.TarInfo(path)
    ti.size, ti.mode = len(data), mode
    tar.addfile(ti, io.BytesIO(data))


def _base(tar) -> None:
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True,
                             check=True).stdout.split()
    for d in ("bin", "etc", "tmp", "root", "home", "home/app", "proc", "sys", "dev", "www",
              "work", "data"):
        _add_dir(tar, d, 0o1777 if d == "tmp" else 0o755)
    _add_file(tar, "bin/busybox", Path(BUSYBOX).read_bytes(), 0o755)
    for name in applets:
        if name != "busybox":
            ti = tarfile.TarInfo(f"bin/{name}")
            ti.type, ti.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(ti)
    _add_file(tar, "etc/passwd", PASSWD.encode())
    _add_file(tar, "etc/group", GROUP.encode())


class Layout:
    """An OCI image layout on disk holding several tagged images."""

    def __init__(self, path: Path):
        self.path = Path(path)
        (self.path / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (self.path / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
        self.index: list[dict] = []
        self._base = _tar(_base)

    def _blob(self, data: bytes) -> dict:
        digest = hashlib.sha256(data).hexdigest()
        (self.path / "blobs" / "sha256" / digest).write_bytes(data)
        return {"digest": f"sha256:{digest}", "size": len(data)}

    def add(self, image: TestImage, ref_name: str) -> str:
        def own(tar):
            for path, content in image.files.items():
                _add_file(tar, path, content.encode(), 0o755 if "cgi-bin/" in path else 0o644)
            for path, source in image.host_files.items():
                _add_file(tar, path, Path(source).read_bytes(), Path(source).stat().st_mode & 0o777)
        layers = [self._base, _tar(own)]
        config = {"architecture": _arch(), "os": "linux", "config": image.config,
                  "rootfs": {"type": "layers", "diff_ids": [d for _, d in layers]}}
        manifest = {"schemaVersion": 2, "mediaType": MANIFEST,
                    "config": {"mediaType": CONFIG, **self._blob(json.dumps(config).encode())},
                    "layers": [{"mediaType": LAYER, **self._blob(blob)} for blob, _ in layers]}
        desc = self._blob(json.dumps(manifest).encode())
        self.index.append({"mediaType": MANIFEST, **desc,
                           "annotations": {"org.opencontainers.image.ref.name": ref_name}})
        (self.path / "index.json").write_text(json.dumps({"schemaVersion": 2,
                                                          "manifests": self.index}))
        return desc["digest"]


def push(layout: Path, ref_name: str, dest: str, creds: tuple[str, str] | None = None,
         timeout: float = 60.0, prefix: list[str] = ()) -> None:
    """`prefix`: e.g. ["ip", "netns", "exec", NS] when the registry lives in a lab host."""
    argv = [*prefix, "skopeo", "--insecure-policy", "copy", "--dest-tls-verify=false"]
    if creds:
        argv += ["--dest-creds", f"{creds[0]}:{creds[1]}"]
    argv += [f"oci:{layout}:{ref_name}", f"docker://{dest}"]
    subprocess.run(argv, check=True, capture_output=True, timeout=timeout)


def build_and_push(workdir: Path, registry: str, images: list[TestImage] | None = None,
                   creds: tuple[str, str] | None = None, prefix: list[str] = ()) -> dict[str, str]:
    """Build the images and push them; returns {"covey/httpd:v1": manifest digest, ...}."""
    layout = Layout(Path(workdir) / "layout")
    digests = {}
    for img in images or standard_images():
        name = f"{img.repo}:{img.tag}"
        ref_name = name.replace("/", "-").replace(":", "-")
        digests[name] = layout.add(img, ref_name)
        push(layout.path, ref_name, f"{registry}/{name}", creds, prefix=prefix)
    return digests
