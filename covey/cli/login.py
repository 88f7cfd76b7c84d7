"""`covey login` (the credentials file docker login writes) and what `--with-registry-auth`
sends: the user's credentials for the registries of the images it deploys."""
import sys

from covey import registryauth
from covey.errors import InvalidArgument
from proto import objects_pb2 as pb


def add_parser(subparsers) -> None:
    login = subparsers.add_parser("login", help="keep credentials for a registry (as docker login)")
    login.add_argument("-u", "--username", required=True)
    login.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    login.add_argument("server", nargs="?", default=registryauth.DOCKER_HUB, metavar="SERVER")
    login.set_defaults(run=login_registry, needs_daemon=False)


def login_registry(conn, args) -> int:
    if not args.password_stdin:
        raise InvalidArgument("give the password on stdin with --password-stdin (never on the command line)")
    password = sys.stdin.read().rstrip("\r\n")
    registry = registryauth.normalize(args.server)
    path = registryauth.save(registry, args.username, password)
    print(f"Credentials for {registry} saved in {path} (they are checked when an image is pulled)")
    return 0


def registry_auth_for(image: str) -> pb.RegistryAuth | None:
    """The user's credentials for the image's registry, or None (said on stderr: the pull
    then goes without, as Docker's)."""
    registry = registryauth.registry_of(image)
    auth = registryauth.credentials(registry)
    if auth is None:
        print(f"warning: no credentials for registry {registry} in {registryauth.config_path()}; "
              "its images are pulled without", file=sys.stderr)
    return auth


def registry_auths_for(images: list[str]) -> dict[str, pb.RegistryAuth]:
    """For `stack deploy --with-registry-auth`: the credentials by registry of every image given
    (DeployStackRequest.registry_auths)."""
    found = {}
    for registry in sorted({registryauth.registry_of(image) for image in images}):
        auth = registryauth.credentials(registry)
        if auth is not None:
            found[registry] = auth
    return found
