"""`covey stack config` (run_stack_config) and python3 -m covey.compose."""
import argparse
import io
import subprocess
import sys

import yaml

from covey.compose.cli import add_stack_config_parser, run_stack_config
from tests.unit.compose.compose_testlib import REPO, write


def parse(argv):
    parser = argparse.ArgumentParser(prog="covey stack")
    add_stack_config_parser(parser.add_subparsers(dest="cmd"))
    return parser.parse_args(["config", *argv])


def run(argv):
    out, err = io.StringIO(), io.StringIO()
    code = run_stack_config(parse(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_prints_yaml_and_warnings(tmp_path):
    path = write(tmp_path, "services:\n  web:\n    image: x\n    build: .\n    environment: {D: yes}\n")
    code, out, err = run(["-c", path])
    assert code == 0
    assert yaml.safe_load(out)["services"]["web"]["environment"] == {"D": "yes"}
    assert "WARNING: service 'web': key 'build'" in err


def test_flags(tmp_path):
    args = parse(["-c", "a.yml", "--compose-file", "b.yml", "--env-file", "e", "--strict",
                  "--skip-interpolation"])
    assert args.compose_files == ["a.yml", "b.yml"] and args.env_files == ["e"]
    assert args.strict and args.skip_interpolation and args.func is run_stack_config


def test_bad_input_is_one_error_line(tmp_path):
    path = write(tmp_path, "services:\n  web:\n    image: x\n    portz: []\n")
    code, out, err = run(["-c", path])
    assert code == 1 and out == ""
    assert err == f"Error: {path}:4, services.web.portz: unknown key 'portz' (only x- keys may be added)\n"


def test_strict(tmp_path):
    path = write(tmp_path, "services: {web: {image: x, container_name: w}}\n")
    code, _, err = run(["-c", path, "--strict"])
    assert code == 1 and "container_name" in err


def test_module_entry_point_reads_stdin(tmp_path):
    result = subprocess.run([sys.executable, "-m", "covey.compose", "-c", "-"], cwd=REPO,
                            input=b"services: {web: {image: 'n:${T:-7}'}}\n", capture_output=True,
                            env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(result.stdout)["services"]["web"]["image"] == "n:7"
