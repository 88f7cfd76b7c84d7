"""The local image store: skopeo pulls into an OCI layout per reference, umoci unpacks each
image (by manifest digest) once. Concurrent pulls of one reference happen once."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from .errors import CommandError, ImageError
from .proc import run
from .reference import Reference, is_loopback_registry, parse_reference

log = logging.getLogger(__name__)
TAG = "image"   # the one tag inside each per-reference OCI layout


@dataclass
class ImageConfig:
    """The parts of the OCI image config that decide how a container runs."""
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=list)
    workdir: str = ""
    user: str = ""
    stop_signal: str = ""

    @classmethod
    def from_oci(cls, doc: dict) -> ImageConfig:
        c = doc.get("config") or {}
        return cls(entrypoint=list(c.get("Entrypoint") or []), cmd=list(c.get("Cmd") or []),
                   env=list(c.get("Env") or []), workdir=c.get("WorkingDir") or "",
                   user=c.get("User") or "", stop_signal=c.get("StopSignal") or "")


@dataclass
class Image:
    reference: str
    digest: str          # manifest digest
    rootfs: Path         # unpacked, shared read-only lower layer
    config: ImageConfig


def _explain(ref: Reference, err: str) -> str:
    """Turn skopeo's message into the reason a task shows."""
    low = err.lower()
    if "manifest unknown" in low or "name unknown" in low or "not found" in low:
        why = "not found in the registry"
    elif "unauthorized" in low or "authentication required" in low or "denied" in low:
        why = "the registry refused the credentials"
    elif any(s in low for s in ("connection refused", "no such host", "i/o timeout", "timed out",
                                "network is unreachable", "no route to host", "dial tcp")):
        why = f"registry {ref.registry} is unreachable"
    elif "server gave http response to https client" in low:
        why = f"registry {ref.registry} speaks plain HTTP; add --insecure-registry {ref.registry}"
    else:
        why = "pull failed"
    return f"image {ref}: {why}: {err.strip()[-400:]}"


def memory_authfile(registry: str, auth: tuple[str, str]) -> int:
    """A descriptor of an in-memory file (memfd, never on a disk) holding the credentials as a
    containers-auth.json, for skopeo to read by /dev/fd/N. Not --src-creds: argv is readable by
    every user in /proc/PID/cmdline. The caller closes it; the memory goes with the last close."""
    token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    fd = os.memfd_create("covey-registry-auth", os.MFD_CLOEXEC)  # pass_fds makes the child's inheritable
    try:
        os.write(fd, json.dumps({"auths": {registry: {"auth": token}}}).encode())
    except OSError:
        os.close(fd)
        raise
    return fd


class ImageStore:
    def __init__(self, root: Path, run_dir: Path, *, insecure_registries: tuple[str, ...] = (),
                 pull_timeout: float = 300.0, unpack_timeout: float = 300.0,
                 skopeo: str = "skopeo", umoci: str = "umoci"):
        self.root, self.run_dir = Path(root), Path(run_dir)
        self.insecure = set(insecure_registries)
        self.pull_timeout, self.unpack_timeout = pull_timeout, unpack_timeout
        self.skopeo, self.umoci = skopeo, umoci
        self._inflight: dict[str, asyncio.Future] = {}
        self.pulls = 0          # skopeo runs started: shared pulls count once
        for sub in ("layouts", "unpacked", "tmp"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    def _layout(self, ref: Reference) -> Path:
        return self.root / "layouts" / hashlib.sha256(str(ref).encode()).hexdigest()[:32]

    async def get(self, image: str, *, auth: tuple[str, str] | None = None,
                  always_pull: bool = False) -> Image:
        """The image, pulled and unpacked if needed. Pulls of one reference are shared."""
        ref = parse_reference(image)
        key = str(ref)
        if not always_pull or ref.digest:
            cached = self._cached(ref)
            if cached:
                return cached
        fut = self._inflight.get(key)
        if fut is None:
            fut = asyncio.ensure_future(self._pull_and_unpack(ref, auth))
            self._inflight[key] = fut
            fut.add_done_callback(lambda _: self._inflight.pop(key, None))
        return await asyncio.shield(fut)

    def _cached(self, ref: Reference) -> Image | None:
        layout = self._layout(ref)
        try:
            digest = self._manifest_digest(layout)
        except (OSError, ValueError, KeyError):
            return None
        unpacked = self.root / "unpacked" / digest.split(":", 1)[1]
        if not (unpacked / "rootfs").is_dir():
            return None
        return Image(str(ref), digest, unpacked / "rootfs", self._config(layout, digest))

    async def _pull_and_unpack(self, ref: Reference, auth) -> Image:
        layout = await self._pull(ref, auth)
        digest = self._manifest_digest(layout)
        rootfs = await self._unpack(layout, digest)
        return Image(str(ref), digest, rootfs, self._config(layout, digest))

    async def _pull(self, ref: Reference, auth) -> Path:
        final = self._layout(ref)
        tmp = self.root / "tmp" / f"pull-{uuid.uuid4().hex[:12]}"
        argv = [self.skopeo, "--insecure-policy", "--command-timeout", f"{int(self.pull_timeout)}s",
                "copy", "--retry-times", "0"]
        if ref.registry in self.insecure or is_loopback_registry(ref.registry):
            argv.append("--src-tls-verify=false")
        authfd = -1
        if auth:
            authfd = memory_authfile(ref.registry, auth)
            argv += ["--src-authfile", f"/dev/fd/{authfd}"]
        argv += [ref.transport, f"oci:{tmp}:{TAG}"]
        log.info("pulling %s%s", ref, " with credentials" if auth else "")
        self.pulls += 1
        try:
            await run(argv, self.pull_timeout + 5, pass_fds=(authfd,) if auth else ())
        except CommandError as e:
            shutil.rmtree(tmp, ignore_errors=True)
            raise ImageError(_explain(ref, str(e))) from None
        finally:
            if auth:
                os.close(authfd)
        old = None
        if final.exists():   # a re-pull: swap in the new layout, then drop the old one
            old = final.with_name(final.name + f".old-{uuid.uuid4().hex[:8]}")
            os.rename(final, old)
        os.rename(tmp, final)
        if old:
            shutil.rmtree(old, ignore_errors=True)
        return final

    async def _unpack(self, layout: Path, digest: str) -> Path:
        dest = self.root / "unpacked" / digest.split(":", 1)[1]
        if (dest / "rootfs").is_dir():
            return dest / "rootfs"
        tmp = self.root / "tmp" / f"unpack-{uuid.uuid4().hex[:12]}"
        try:
            await run([self.umoci, "unpack", "--image", f"{layout}:{TAG}", str(tmp)],
                      self.unpack_timeout)
            os.rename(tmp, dest)
        except CommandError as e:
            raise ImageError(f"unpacking image {digest}: {e}") from None
        except OSError:
            if not (dest / "rootfs").is_dir():   # lost a race with another unpack: fine
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return dest / "rootfs"

    @staticmethod
    def _blob(layout: Path, digest: str) -> dict:
        algo, hexd = digest.split(":", 1)
        return json.loads((layout / "blobs" / algo / hexd).read_text())

    def _manifest_digest(self, layout: Path) -> str:
        index = json.loads((layout / "index.json").read_text())
        for m in index["manifests"]:
            if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == TAG:
                return m["digest"]
        raise KeyError(TAG)

    def _config(self, layout: Path, digest: str) -> ImageConfig:
        manifest = self._blob(layout, digest)
        return ImageConfig.from_oci(self._blob(layout, manifest["config"]["digest"]))
