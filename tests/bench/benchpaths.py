"""Import first in every bench. Run as a script (`python3 tests/bench/X.py`), a bench has only
tests/bench/ on sys.path; this adds what tests/conftest.py and pytest give the tests: the repo
root, deploy/ (the lab) and tests/integration/ (the in-process kits)."""
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
for _path in (REPO / "tests" / "integration", REPO / "deploy", REPO):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
