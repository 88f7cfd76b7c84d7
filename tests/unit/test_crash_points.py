"""Named crash points (manager/state/raft/crash.py): exit at the chosen place, the files
left behind still open."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from manager.state.raft import crash
from manager.state.raft.journal import read_journal

REPO = Path(__file__).resolve().parents[2]
KEY_HEX = "ab" * 32
SCRIPT = """
import sys
from manager.state.raft.journal import DurableJournal
j = DurableJournal(sys.argv[1], bytes.fromhex(sys.argv[2]))
for i in range(1, 6):
    j.add(b"entry%d" % i, i, 1)
    j.sync()
j.deleteEntriesTo(2)
j.sync()
print("done")
"""


def run_with(point: str, journal: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", SCRIPT, str(journal), KEY_HEX], capture_output=True, text=True,
                          cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), crash.ENV: point}, timeout=60)


@pytest.mark.parametrize("point, survivors", [
    ("journal.after_append:3", 2),      # the third record written, not fsynced: may or may not survive
    ("journal.after_fsync:3", 3),
    ("journal.before_rewrite", 5),
    ("atomic.before_rename:2", 5),      # the 1st rename is the new file's; the 2nd the compaction's
])
def test_a_crash_point_exits_there_and_the_journal_still_opens(tmp_path, point, survivors):
    journal = tmp_path / "journal.cvy"
    result = run_with(point, journal)
    assert result.returncode == crash.EXIT_CODE, result.stderr
    assert "done" not in result.stdout and point.split(":")[0] in result.stderr
    indexes = [e[1] for e in read_journal(str(journal), bytes.fromhex(KEY_HEX)).entries]
    assert indexes[:2] == [1, 2] and len(indexes) in (survivors, survivors + 1)
    assert indexes == list(range(1, len(indexes) + 1))


def test_unset_it_is_a_function_that_does_nothing(monkeypatch):
    monkeypatch.delenv(crash.ENV, raising=False)
    assert crash._install() is crash._no_crash
    monkeypatch.setenv(crash.ENV, "apply.before_entry:2")
    assert crash._install() is not crash._no_crash


def test_an_unknown_point_is_refused_by_name(tmp_path):
    result = run_with("journal.nowhere", tmp_path / "journal.cvy")
    assert result.returncode != 0 and "unknown crash point 'journal.nowhere'" in result.stderr
    with pytest.raises(ValueError, match="positive integer"):
        crash._parse("journal.after_fsync:x")
