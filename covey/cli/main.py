"""covey: the command line, with Docker's grammar."""
import argparse
import sys

import grpc

from covey import __version__
from covey.cli import client, container, login, network, node, secret, service, stack, swarm, volume
from covey.errors import EXIT_FAILED, CoveyError, from_rpc_error


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="covey", description="Covey: a swarm of container hosts.")
    parser.add_argument("-H", "--host", help="daemon to talk to: unix:///path or tcp://HOST:PORT "
                                             f"(default $COVEY_HOST or {client.DEFAULT_HOST})")
    parser.add_argument("--cert-dir", help="TLS certificates for tcp:// (default $COVEY_CERT_DIR "
                                           f"or {client.DEFAULT_CERT_DIR})")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds each call may take, connecting included (default "
                             f"${client.TIMEOUT_ENV} or {client.DEFAULT_TIMEOUT:g}); log streams "
                             "run on once connected")
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
    """The exit code: 0, or EXIT_FAILED (nothing applied) or EXIT_UNKNOWN (the change may
    have been applied), as covey/errors.py defines them."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    needs_daemon = getattr(args, "needs_daemon", True)
    try:
        if not (needs_daemon(args) if callable(needs_daemon) else needs_daemon):
            return args.run(None, args)
        return _run_connected(args)
    except grpc.RpcError as exc:
        return _failed(from_rpc_error(exc))
    except CoveyError as exc:
        return _failed(exc)


def _run_connected(args) -> int:
    timeout = client.call_timeout(args.timeout)
    conn = client.connect(args.host, args.cert_dir, timeout)
    try:
        grpc.channel_ready_future(conn.raw or conn.channel).result(timeout=timeout)
    except grpc.FutureTimeoutError:
        print(f"Error: cannot connect to the Covey daemon at {conn.target} within {timeout:g}s: "
              "is coveyd running?", file=sys.stderr)
        return EXIT_FAILED
    return args.run(conn, args)


def _failed(exc: CoveyError) -> int:
    print(f"Error: {exc.explained()}", file=sys.stderr)
    return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
