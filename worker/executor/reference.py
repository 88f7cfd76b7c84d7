"""Image references as Docker reads them: [REGISTRY/]NAME[:TAG][@sha256:DIGEST]."""
from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import ImageError

DEFAULT_REGISTRY = "docker.io"
_NAME = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class Reference:
    registry: str
    repository: str
    tag: str = ""
    digest: str = ""

    def __str__(self) -> str:
        s = f"{self.registry}/{self.repository}"
        if self.tag:
            s += f":{self.tag}"
        if self.digest:
            s += f"@{self.digest}"
        return s

    @property
    def transport(self) -> str:
        """skopeo's source; a digest wins over a tag (skopeo refuses both)."""
        name = f"{self.registry}/{self.repository}"
        return f"docker://{name}@{self.digest}" if self.digest else f"docker://{name}:{self.tag}"


def parse_reference(ref: str) -> Reference:
    """Parse like Docker: the first component is a registry if it has a '.' or ':' or is
    'localhost'; a one-component name on Docker Hub gets 'library/'; no tag means 'latest'."""
    if not ref or ref != ref.strip():
        raise ImageError(f"invalid image reference {ref!r}: empty or has spaces")
    rest, digest = ref, ""
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not _DIGEST.match(digest):
            raise ImageError(f"invalid image reference {ref!r}: bad digest {digest!r}")
    tag = ""
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1:]
        if not _TAG.match(tag):
            raise ImageError(f"invalid image reference {ref!r}: bad tag {tag!r}")
    first, _, remainder = rest.partition("/")
    if remainder and ("." in first or ":" in first or first == "localhost"):
        registry, repo = first, remainder
    else:
        registry, repo = DEFAULT_REGISTRY, rest
    if registry == DEFAULT_REGISTRY and "/" not in repo:
        repo = f"library/{repo}"
    if not _NAME.match(repo):
        raise ImageError(f"invalid image reference {ref!r}: bad repository name {repo!r}")
    if not tag and not digest:
        tag = "latest"
    return Reference(registry, repo, tag, digest)


def is_loopback_registry(registry: str) -> bool:
    """Docker treats localhost and 127.0.0.0/8 registries as insecure (plain HTTP) by default."""
    host = registry.rsplit(":", 1)[0] if registry.count(":") == 1 else registry
    return host == "localhost" or host.startswith("127.") or host in ("[::1]", "::1")
