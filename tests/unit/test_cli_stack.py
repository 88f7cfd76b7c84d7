"""`covey stack config` through the covey command itself: no daemon, YAML out, clean errors."""
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
POLL_STACK = REPO / "tests" / "unit" / "compose" / "fixtures" / "poll-stack.yml"


def covey(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "covey.cli.main", "-H", "unix:///nonexistent.sock", *args],
                          input=stdin, capture_output=True, text=True, cwd=REPO)


def test_stack_config_needs_no_daemon():
    result = covey("stack", "config", "-c", str(POLL_STACK))
    assert result.returncode == 0, result.stderr
    model = yaml.safe_load(result.stdout)
    assert set(model["services"]) == {"ballot", "tally", "cache", "store", "counter"}


def test_stack_config_errors_name_the_place():
    result = covey("stack", "config", "-c", "-", stdin="services:\n  web:\n    image: x\n    portz: [1]\n")
    assert result.returncode == 1
    assert "-:4, services.web.portz: unknown key 'portz'" in result.stderr
