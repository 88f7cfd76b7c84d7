"""The secrets and configs this node's tasks use, held in memory only.

The dispatcher sends each one with the first task here that uses it and removes it with the
last (manager/dispatcher/secretfeed.py); a complete assignments message replaces the set.
When a task's container is prepared, its files are handed to the executor as plain data
(ContainerFile), which writes them on a tmpfs of the container's own.
"""
from proto import dispatcher_pb2
from proto import objects_pb2 as pb
from worker.executor import ContainerFile, ExecutorError

SECRETS_DIR = "/run/secrets/"    # a relative secret target is under it (Docker's)
CONFIGS_DIR = "/"                # a relative config target is under it


def file_path(target: str, base: str) -> str:
    return target if target.startswith("/") else base + target


class SecretStore:
    def __init__(self) -> None:
        self._secrets: dict[str, pb.Secret] = {}
        self._configs: dict[str, pb.Config] = {}

    def apply(self, message: dispatcher_pb2.AssignmentsMessage) -> None:
        if message.type == dispatcher_pb2.AssignmentsMessage.COMPLETE:
            self._secrets.clear()
            self._configs.clear()
        self._secrets.update((s.id, s) for s in message.secrets)
        self._configs.update((c.id, c) for c in message.configs)
        for secret_id in message.removed_secrets:
            self._secrets.pop(secret_id, None)
        for config_id in message.removed_configs:
            self._configs.pop(config_id, None)

    def held(self) -> tuple[set[str], set[str]]:
        """The IDs of the secrets and of the configs this node holds now."""
        return set(self._secrets), set(self._configs)

    def files(self, task: pb.Task) -> list[ContainerFile]:
        """The task's secret and config files; ExecutorError naming one this node lacks."""
        files = []
        for s in task.spec.container.secrets:
            secret = self._secrets.get(s.secret_id)
            if secret is None:
                raise ExecutorError(f"secret {s.secret_name or s.secret_id} is not available on this node")
            files.append(_file(s.file, file_path(s.file.name or s.secret_name, SECRETS_DIR), secret.spec.data))
        for c in task.spec.container.configs:
            config = self._configs.get(c.config_id)
            if config is None:
                raise ExecutorError(f"config {c.config_name or c.config_id} is not available on this node")
            files.append(_file(c.file, file_path(c.file.name or c.config_name, CONFIGS_DIR), config.spec.data))
        return files


def _file(target, path: str, data: bytes) -> ContainerFile:
    return ContainerFile(target=path, uid=int(target.uid or 0), gid=int(target.gid or 0),
                         mode=target.mode or 0o444, data=data)
