import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_generated_code_is_fresh():
    """Fails when a .proto changed but `python3 proto/generate.py` was not run."""
    result = subprocess.run([sys.executable, "proto/generate.py", "--check"], cwd=REPO,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
