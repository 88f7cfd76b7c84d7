import asyncio
import os

from worker.executor.logfile import LOG_NAME, LogEntry, LogWriter, decode, encode
from worker.executor.logs import read_logs


def test_entry_round_trip_keeps_nanoseconds():
    e = LogEntry(1700000000.123456, "stderr", "hello\n")
    d = decode(encode(e))
    assert d.stream == "stderr" and d.line == "hello\n" and abs(d.time - e.time) < 1e-6
    assert e.rfc3339().startswith("2023-11-14T22:13:20.123456")


def test_torn_line_is_skipped():
    assert decode(b'{"log": "x') is None


def test_rotation_keeps_max_files_and_newest_lines(tmp_path):
    w = LogWriter(str(tmp_path / LOG_NAME), max_size=300, max_files=3)
    for i in range(100):
        w.write("stdout", f"line {i}\n")
    w.close()
    files = sorted(os.listdir(tmp_path))
    assert files == [LOG_NAME, f"{LOG_NAME}.1", f"{LOG_NAME}.2"]
    assert all(os.path.getsize(tmp_path / f) <= 300 for f in files)
    got = asyncio.run(_collect(tmp_path, 3))
    nums = [int(entry.split()[1]) for entry in got]
    assert nums == sorted(nums) and nums[-1] == 99 and nums[0] > 0


def test_tail_and_since(tmp_path):
    w = LogWriter(str(tmp_path / LOG_NAME), max_size=0, max_files=1)
    for i in range(10):
        w.write("stdout" if i % 2 else "stderr", f"l{i}\n", when=1000.0 + i)
    w.close()
    assert asyncio.run(_collect(tmp_path, 1, tail=3)) == ["l7\n", "l8\n", "l9\n"]
    assert asyncio.run(_collect(tmp_path, 1, since=1005.0)) == [f"l{i}\n" for i in range(5, 10)]
    assert asyncio.run(_collect(tmp_path, 1, tail=0)) == []


async def _collect(path, max_files, **kw):
    return [e.line async for e in read_logs(path, max_files, **kw)]
