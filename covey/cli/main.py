"""covey: the command line, with Docker's grammar."""
import argparse
import sys

import grpc

from covey import __version__
from covey.cli import client, container, login, network, node, secret, service, stack, swarm, volume
from covey.errors import CoveyError, from_rpc_error


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="covey", description="Covey: a swarm of container hosts.")
    parser.add_argument("-H", "--host", help="daemon to talk to: unix:///path or tcp://HOST:PORT "
                                             f"(default $COVEY_HOST or {client.DEFAULT_HOST})")
    parser.add_argument("--cert-dir", help="TLS certificates for tcp:// (default $COVEY_CERT_DIR "
                                           f"or {client.DEFAULT_CERT_DIR})")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the daemon")
    parser.add_argument("--version", action="version", version=f"covey {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    swarm.add_parser(subparsers)
    node.add_parser(subparsers)
    container.add_parser(subparsers)
    service.add_parser(subparsers)
    network.add_parser(subparsers)
    stack.add_parser(subparsers)
    volume.add_parser(subparsers)
    login.add_parser(subparsers)
    secret.add_parser(subparsers)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    needs_daemon = getattr(args, "needs_daemon", True)
    if not (needs_daemon(args) if callable(needs_daemon) else needs_daemon):
        try:
            return args.run(None, args)
        except CoveyError as exc:
            print(f"Error: {exc}", file=sys.stderr)
            return 1
    try:
        conn = client.connect(args.host, args.cert_dir)
        try:
            grpc.channel_ready_future(conn.channel).result(timeout=min(args.timeout, 10))
        except grpc.FutureTimeoutError:
            print(f"Error: cannot connect to the Covey daemon at {conn.target}: is coveyd running?",
                  file=sys.stderr)
            return 1
        return args.run(conn, args)
    except grpc.RpcError as exc:
        print(f"Error: {from_rpc_error(exc)}", file=sys.stderr)
        return 1
    except CoveyError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
