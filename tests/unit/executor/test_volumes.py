"""Anonymous volumes: the same container and target find the same volume in every process
(a restarted coveyd, a re-created container), whatever Python's per-process hash salt."""
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

SOURCE_OF_ANONYMOUS_VOLUME = """
import json, sys
from pathlib import Path
from worker.executor import ContainerConfig, Executor, ExecutorSettings, Mount
root = Path(sys.argv[1])
ex = Executor(ExecutorSettings(data_dir=root / "data", run_dir=root / "run", runc_root=root / "runc",
                               cgroup_parent="unused"))
cdir = root / "c"
cdir.mkdir(exist_ok=True)
cfg = ContainerConfig(name="web.1", image="unused", mounts=[Mount("volume", "/var/lib/data")])
print(json.dumps([m.source for m in ex._host_mounts(cfg, cdir) if m.target == "/var/lib/data"]))
"""


def _volume_source(tmp_path: Path, hash_seed: str) -> str:
    out = subprocess.run([sys.executable, "-c", SOURCE_OF_ANONYMOUS_VOLUME, str(tmp_path)], check=True,
                         capture_output=True, text=True, cwd=REPO, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(REPO), "PYTHONHASHSEED": hash_seed})
    [source] = json.loads(out.stdout)
    return source


def test_anonymous_volume_name_is_the_same_in_every_process(tmp_path):
    first, second = _volume_source(tmp_path, "1"), _volume_source(tmp_path, "2")
    assert first == second
    assert Path(first).parent.name.startswith("web.1-")
