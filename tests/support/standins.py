"""Real stack files (tests/fixtures/compose, from the public compose corpus) made to run on a
lab: their images are not here and the lab has no internet, so each service runs one of the
lab registry's test images instead, and what cannot run here is dropped. Everything else of
the file (services, replicas, modes, networks, named volumes, environment, published ports)
stays as its authors wrote it."""
from __future__ import annotations

from pathlib import Path

import yaml

FIXTURES = Path(__file__).parents[1] / "fixtures" / "compose"
SERVER, TOOL = "covey/whoami:1", "covey/busybox:1"   # tests/support/images.py
SERVER_PORT = 8080                                   # where the SERVER stand-in listens
HOST_PATH_STARTS = ("/", ".", "~")


def lab_stack(fixture: str, registry: str) -> str:
    """The fixture as a lab can deploy it, with a header comment saying what was changed."""
    data = yaml.safe_load((FIXTURES / fixture).read_text())
    notes: list[str] = []
    for name, service in (data.get("services") or {}).items():
        notes += [f"{name}: {note}" for note in stand_in(service, registry)]
    header = "".join(f"# {note}\n" for note in [f"{fixture}, rewritten for the lab:", *notes])
    return header + yaml.safe_dump(data, sort_keys=False)


def stand_in(service: dict, registry: str) -> list[str]:
    """Rewrites one service in place; returns what it changed. A service with a command of
    its own gets busybox to run it; any other, a web server (its image's program is not here)."""
    image = f"{registry}/{TOOL if 'command' in service else SERVER}"
    notes = [f"image {service.get('image')} -> {image}"]
    service["image"] = image
    if "command" not in service and service.get("ports"):
        service["ports"] = [_retarget(port) for port in service["ports"]]
        notes.append(f"published ports now reach the stand-in's port {SERVER_PORT}")
    kept = [v for v in service.get("volumes", []) if not _host_bind(v)]
    if len(kept) != len(service.get("volumes", [])):
        service["volumes"] = kept
        notes.append("host bind mounts dropped: the lab hosts do not have those paths")
    if service.pop("healthcheck", None) is not None:
        notes.append("healthcheck dropped: it runs the original image's tools")
    return notes


def _retarget(port: str | int | dict) -> str | dict:
    if isinstance(port, dict):
        return {**port, "target": SERVER_PORT}
    published, sep, target = str(port).rpartition(":")
    protocol = target.partition("/")[2]
    return f"{published}{sep}{SERVER_PORT}" + (f"/{protocol}" if protocol else "")


def _host_bind(volume: str | dict) -> bool:
    if isinstance(volume, dict):
        return volume.get("type") == "bind"
    return ":" in volume and volume.startswith(HOST_PATH_STARTS)
