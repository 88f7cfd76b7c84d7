"""Import first in every bench. Run as a script (`python3 tests/bench/X.py`), a bench has only
tests/bench/ on sys.path; this adds the repo root, as pytest does for the tests, so that
`deploy.lab`, `tests.support` and the project's packages import."""
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
