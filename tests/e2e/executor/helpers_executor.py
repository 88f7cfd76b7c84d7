"""Helpers for the executor's e2e tests (a uniquely named module: conftests cannot share)."""
import uuid
from pathlib import Path

from worker.executor import ExecutorSettings

RUN_ID = uuid.uuid4().hex[:6]


def settings_for(workdir: Path, tag: str) -> ExecutorSettings:
    return ExecutorSettings(data_dir=workdir / f"{tag}-data", run_dir=workdir / f"{tag}-run",
                            runc_root=workdir / f"{tag}-runc",
                            cgroup_parent=f"covey-test-{RUN_ID}-{tag}", prefix=f"cx{RUN_ID}{tag}-",
                            runc_timeout=20, shim_timeout=20, kill_timeout=10, pull_timeout=30)


async def output(ex, name: str, timeout: float = 15.0) -> str:
    """Wait for the container to exit and return its stdout and stderr as one text."""
    await ex.wait(name, timeout)
    return "".join([e.line async for e in ex.logs(name)])
