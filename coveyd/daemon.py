"""coveyd: the node process (one per host, as root).

    coveyd [--data-dir DIR] [--socket PATH] [--log-file FILE] [--hostname NAME] [--set NAME=DURATION]...
"""
import argparse
import asyncio
import logging
import os
import resource
import signal
import socket
import sys
from pathlib import Path

import grpc

from covey import __version__
from covey.errors import CoveyError
from coveyd.localapi import add_local_services
from coveyd.node import NetworkSetup, Node
from coveyd.settings import Settings
from overlay.dns import upstreams_from_resolv_conf

log = logging.getLogger("coveyd")


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="coveyd", description="The Covey node daemon.")
    parser.add_argument("--data-dir", default="/var/lib/covey", type=Path)
    parser.add_argument("--socket", default="/run/covey/covey.sock", type=Path,
                        help="root-only unix socket for the covey CLI")
    parser.add_argument("--log-file", type=Path, help="default: standard error")
    parser.add_argument("--hostname", default=socket.gethostname())
    parser.add_argument("--run-dir", type=Path, help="transient files (default: the socket's directory)")
    parser.add_argument("--insecure-registry", action="append", default=[], metavar="HOST:PORT",
                        help="a registry to reach over plain HTTP (repeatable)")
    parser.add_argument("--net-prefix", default="cvy",
                        help="prefix of the network namespaces, links and nft tables of overlay networks "
                             "(at most 10 characters; unique per coveyd on one kernel)")
    parser.add_argument("--dns-upstream", action="append", default=[], metavar="IP[:PORT]",
                        help="resolver for names the embedded DNS does not know (repeatable; "
                             "default: the nameservers of /etc/resolv.conf)")
    parser.add_argument("--debug", action="store_true")
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="NAME=DURATION",
                        help="override a period or timeout, e.g. raft.election_min=200ms")
    parser.add_argument("--version", action="version", version=f"coveyd {__version__}")
    return parser.parse_args(argv)


def setup_logging(log_file: Path | None, debug: bool) -> None:
    handler = logging.FileHandler(log_file) if log_file else logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    # pyroute2 logs every netlink message at debug: it would drown ours and slow every kernel change.
    logging.getLogger("pyroute2").setLevel(logging.INFO)


def raise_open_files_limit() -> None:
    """The embedded DNS holds two sockets per container: the soft limit of open files
    (often 1,024) would run out near 500 containers, so take the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def serve(args, settings: Settings) -> None:
    raise_open_files_limit()
    args.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    args.socket.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    args.socket.unlink(missing_ok=True)
    executor = make_executor(args)
    adopted = await executor.adopt()
    log.info("took back %d containers", len(adopted))
    network = NetworkSetup(args.net_prefix, args.dns_upstream or host_nameservers(),
                           (args.run_dir or args.socket.parent) / "network")
    node = Node(args.data_dir, args.hostname, settings, executor, network,
                insecure_registries=tuple(args.insecure_registry))
    await node.resume()
    server = grpc.aio.server()
    add_local_services(server, node, executor)
    old_umask = os.umask(0o177)  # the socket is created 0600: root only
    try:
        server.add_insecure_port(f"unix://{args.socket}")
        await server.start()
    finally:
        os.umask(old_umask)
    os.chmod(args.socket, 0o600)
    log.info("coveyd %s listening on %s (hostname %s, data %s)", __version__, args.socket,
             args.hostname, args.data_dir)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    await server.stop(settings.shutdown_timeout)
    await node.close()
    await executor.close()  # containers keep running: a restarted coveyd adopts them
    args.socket.unlink(missing_ok=True)


def host_nameservers() -> list[str]:
    """The host's resolvers, the embedded DNS's default upstreams (none without a resolv.conf)."""
    try:
        return upstreams_from_resolv_conf()
    except OSError:
        return []


def make_executor(args):
    from worker.executor import Executor, ExecutorSettings
    from worker.executor.executor import cgroup_parent_for
    run_dir = args.run_dir or args.socket.parent
    return Executor(ExecutorSettings(data_dir=args.data_dir, run_dir=run_dir / "executor",
                                     runc_root=run_dir / "runc",
                                     cgroup_parent=cgroup_parent_for(args.data_dir),
                                     insecure_registries=tuple(args.insecure_registry)))


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    settings = Settings()
    try:
        for assignment in args.settings:
            settings.apply(assignment)
    except CoveyError as exc:
        print(f"coveyd: {exc}", file=sys.stderr)
        return 2
    if not (args.net_prefix.isalnum() and len(args.net_prefix) <= 10):
        print(f"coveyd: --net-prefix {args.net_prefix!r}: use at most 10 letters and digits "
              "(interface names are short)", file=sys.stderr)
        return 2
    setup_logging(args.log_file, args.debug)
    try:
        asyncio.run(serve(args, settings))
    except CoveyError as exc:
        log.error("%s", exc)
        print(f"coveyd: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
