"""The worker's container executor: images (skopeo, umoci), overlayfs roots, runc, logs,
volumes and healthchecks. It knows nothing of the managers or of protobuf: its input is
`ContainerConfig`; the agent converts task specs into it.

Names are imported lazily so that the log shim (`python3 -m worker.executor.shim`, started
once per container) loads only what it uses."""
_EXPORTS = {
    "ContainerConfig": "config", "ContainerFile": "config", "Healthcheck": "config", "Mount": "config",
    "Ulimit": "config",
    "ExecutorError": "errors", "ImageError": "errors", "ContainerNotFound": "errors",
    "Executor": "executor", "ExecutorSettings": "executor", "ContainerInfo": "executor",
    "VolumeInfo": "volumes", "VolumeInUse": "volumes", "VolumeNotFound": "volumes",
    "LogEntry": "logfile", "ExecOptions": "execsession", "ExecSession": "execsession",
}
__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        import importlib
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(name)
