"""covey stack ...: today `stack config` (needs no swarm); deploy comes with services."""
from covey.compose.cli import add_stack_config_parser, run_stack_config


def add_parser(subparsers) -> None:
    stack = subparsers.add_parser("stack", help="manage stacks").add_subparsers(dest="stack_cmd", required=True)
    config = add_stack_config_parser(stack)
    config.set_defaults(run=lambda conn, args: run_stack_config(args), needs_daemon=False)
