"""python3 -m covey.compose -c FILE... : the same as `covey stack config`."""
import argparse
import sys

from covey.compose.cli import add_stack_config_parser, run_stack_config


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m covey.compose")
    sub = parser.add_subparsers(dest="command")
    add_stack_config_parser(sub)
    args = parser.parse_args(["config", *(sys.argv[1:] if argv is None else argv)])
    return run_stack_config(args)


if __name__ == "__main__":
    sys.exit(main())
