"""mypy with a baseline that only shrinks.

    python3 .ci/mypy_gate.py            # fail on any error not in .ci/mypy-baseline.txt
    python3 .ci/mypy_gate.py --update   # write the baseline anew (only ever to remove lines)

Errors are compared without line numbers (a line moved by an edit is the same error), as a
multiset: a second error of the same text in the same file is a new error.
"""
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASELINE = ROOT / ".ci" / "mypy-baseline.txt"
ERROR = re.compile(r"^(?P<file>[^:]+):\d+(?::\d+)?: error: (?P<text>.*)$")


def current_errors() -> Counter:
    run = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True)
    if run.returncode not in (0, 1):
        raise SystemExit(f"mypy could not run:\n{run.stdout}{run.stderr}")
    return Counter(f"{m['file']}: {m['text']}" for line in run.stdout.splitlines() if (m := ERROR.match(line)))


def main() -> int:
    errors = current_errors()
    if "--update" in sys.argv:
        BASELINE.write_text("".join(f"{e}\n" for e in sorted(errors.elements())))
        print(f"mypy baseline: {sum(errors.values())} errors written to {BASELINE.name}")
        return 0
    baseline = Counter(BASELINE.read_text().splitlines()) if BASELINE.exists() else Counter()
    new, fixed = errors - baseline, baseline - errors
    for error in sorted(new.elements()):
        print(f"new mypy error: {error}")
    if fixed:
        print(f"{sum(fixed.values())} baseline errors are fixed: run python3 .ci/mypy_gate.py --update")
    print(f"mypy: {sum(errors.values())} errors, {sum(baseline.values())} in the baseline, {sum(new.values())} new")
    return 1 if new else 0


if __name__ == "__main__":
    sys.exit(main())
