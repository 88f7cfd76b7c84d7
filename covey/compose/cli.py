"""`covey stack config`: print the merged, interpolated, normalized compose model."""
import argparse
import sys

from covey.compose.errors import ComposeError
from covey.compose.loader import load_model, render_yaml


def add_loading_flags(parser: argparse.ArgumentParser) -> None:
    """The flags `stack config` and `stack deploy` share."""
    parser.add_argument("-c", "--compose-file", action="append", dest="compose_files",
                        metavar="FILE", default=[],
                        help="compose file, repeatable (later files override); - for stdin")
    parser.add_argument("--env-file", action="append", dest="env_files", metavar="FILE",
                        default=[], help="variables for interpolation (instead of .env)")
    parser.add_argument("--skip-interpolation", action="store_true",
                        help="leave $VARIABLES as they are")
    parser.add_argument("--strict", action="store_true",
                        help="treat keys a swarm cannot carry as errors")


def add_stack_config_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "config", help="Print the final compose model, without a swarm",
        description="Merge, interpolate and validate compose files and print the result.")
    add_loading_flags(parser)
    parser.set_defaults(func=run_stack_config)
    return parser


def run_stack_config(args, stdout=None, stderr=None) -> int:
    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    try:
        loaded = load_model(args.compose_files, args.env_files, args.skip_interpolation,
                            args.strict)
    except ComposeError as exc:
        print(f"Error: {exc}", file=stderr)
        return 1
    for warning in loaded.warnings:
        print(f"WARNING: {warning}", file=stderr)
    stdout.write(render_yaml(loaded.model))
    return 0
