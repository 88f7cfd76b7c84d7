"""Shared by every test layer: the repo root on sys.path, so tests can import deploy/lab.py."""
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
for path in (REPO, REPO / "deploy"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
