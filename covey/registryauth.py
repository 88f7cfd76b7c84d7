"""Registry credentials (`--with-registry-auth`, `covey login`): which registry an image is
pulled from, and the user's credentials for it as `docker login` keeps them in
~/.docker/config.json ("auths": {SERVER: {"auth": base64("user:password")}}).

Shared by the CLI (reads and writes the file) and the managers (a stack's credentials by
registry, applied to each service by its image)."""
from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping
from pathlib import Path

from covey.errors import InvalidArgument
from proto import objects_pb2 as pb

DOCKER_HUB = "docker.io"
# Docker Hub's other names in config files (docker login writes the first).
HUB_ALIASES = ("index.docker.io", "registry-1.docker.io", "registry.hub.docker.com")


def registry_of(image: str) -> str:
    """The registry an image reference is pulled from, as Docker reads it: the first path
    component if it has a '.' or ':' or is 'localhost', else Docker Hub."""
    name = image.split("@", 1)[0]
    first, sep, _ = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return normalize(first)
    return DOCKER_HUB


def normalize(server: str) -> str:
    """A config file's key as a registry's host[:port]: 'https://index.docker.io/v1/' is
    docker.io, 'http://reg:5000' is reg:5000."""
    host = server.split("://", 1)[-1].split("/", 1)[0].lower()
    return DOCKER_HUB if host in HUB_ALIASES else host


def config_path() -> Path:
    """Where docker keeps it: $DOCKER_CONFIG/config.json, else ~/.docker/config.json."""
    directory = os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker"
    return Path(directory) / "config.json"


def _read(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise InvalidArgument(f"cannot read the registry credentials in {path}: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidArgument(f"cannot read the registry credentials in {path}: not a JSON object")
    return doc


def credentials(registry: str, path: Path | None = None) -> pb.RegistryAuth | None:
    """The user's credentials for a registry (host[:port]), or None if there are none."""
    path = path or config_path()
    for server, entry in (_read(path).get("auths") or {}).items():
        if normalize(server) != registry or not isinstance(entry, dict) or not entry.get("auth"):
            continue
        try:
            username, sep, password = base64.b64decode(entry["auth"], validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            sep = ""
        if not sep or not username:
            raise InvalidArgument(f"the credentials for {server} in {path} are not base64 of user:password")
        return pb.RegistryAuth(registry=registry, username=username, password=password)
    return None


def save(registry: str, username: str, password: str, path: Path | None = None) -> Path:
    """Add (or replace) a registry's credentials, keeping the rest of the file; 0600."""
    if not username or ":" in username:
        raise InvalidArgument(f"invalid username {username!r}: not empty, without ':'")
    if not password:
        raise InvalidArgument("a password is required")
    path = path or config_path()
    doc = _read(path)
    auths = doc.setdefault("auths", {})
    for server in [s for s in auths if normalize(s) == registry]:
        del auths[server]
    auths[registry] = {"auth": base64.b64encode(f"{username}:{password}".encode()).decode()}
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, indent="\t")
    os.replace(tmp, path)
    return path


def for_image(auths: Mapping[str, pb.RegistryAuth], image: str) -> pb.RegistryAuth | None:
    """Of credentials by registry (a stack deploy's), those for the image's registry."""
    return auths.get(registry_of(image))
