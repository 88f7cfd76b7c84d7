"""`stack deploy --resolve-image`: pin each service's image tag to the digest the registry
gives now, so that every node runs the same image and a moved tag (`:latest`) updates the
service on the next deploy.

The manager that takes the DeployStack call asks the registry (with skopeo), not the client:
its node reaches the registries the swarm pulls from and knows which speak plain HTTP
(coveyd --insecure-registry; loopback ones too, as Docker's), where a client may be on
another network altogether.
"""
import re
import subprocess
from collections.abc import Callable, Collection

from covey.errors import InvalidArgument
from covey.registryauth import registry_of
from proto import specs_pb2 as specs

MODES = ("always", "changed", "never")
INSPECT_TIMEOUT = 30.0        # seconds for one registry query
IMAGE_LABEL = "com.docker.stack.image"   # the image as the compose file names it
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")

Inspect = Callable[[str], str]   # image reference -> its digest; raises RuntimeError


def plain_http(registry: str, insecure: Collection[str]) -> bool:
    host = registry.rsplit(":", 1)[0] if registry.count(":") == 1 else registry
    return host == "localhost" or host.startswith("127.") or registry in insecure


def skopeo_digest(image: str, insecure: Collection[str] = ()) -> str:
    """The digest the registry gives for `image` now; `insecure`: registries on plain HTTP."""
    argv = ["skopeo", "inspect", "--no-tags", "--format", "{{.Digest}}"]
    if plain_http(registry_of(image), insecure):
        argv.append("--tls-verify=false")
    try:
        done = subprocess.run([*argv, f"docker://{image}"], capture_output=True, text=True,
                              timeout=INSPECT_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeError(str(exc)) from None
    digest = done.stdout.strip()
    if done.returncode != 0 or not _DIGEST.match(digest):
        raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "no digest")
    return digest


def pin_images(services: list[specs.ServiceSpec], mode: str, deployed: dict[str, specs.ServiceSpec],
               inspect: Inspect) -> list[str]:
    """Pin each service's image in place per `mode`; returns warnings for the images that could
    not be resolved (they keep their tag, as Docker's do). `deployed`: the running specs by
    service name; with "changed", an image the file names as before keeps its deployed pin."""
    if mode not in MODES:
        raise InvalidArgument(f"invalid --resolve-image {mode!r}: use {', '.join(MODES)}")
    warnings, seen = [], {}
    for spec in services:
        container = spec.task.container
        named = spec.labels.get(IMAGE_LABEL) or container.image
        if mode == "never" or "@" in named or not named:
            continue
        before = deployed.get(spec.name)
        if mode == "changed" and before is not None and before.labels.get(IMAGE_LABEL) == named:
            container.image = before.task.container.image
            continue
        if named not in seen:
            try:
                seen[named] = f"{named}@{inspect(named)}"
            except RuntimeError as exc:
                seen[named] = named
                warnings.append(f"image {named} could not be accessed on a registry to record its "
                                f"digest ({exc}); each node will pull the tag on its own")
        container.image = seen[named]
    return warnings
