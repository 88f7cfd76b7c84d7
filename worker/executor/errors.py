"""Executor errors. Each message names the container or image and what went wrong, so that
the agent can put it as the task's REJECTED/FAILED reason as it is."""


class ExecutorError(Exception):
    """Something the executor could not do for a container."""


class ImageError(ExecutorError):
    """An image could not be pulled, found or unpacked."""


class ContainerNotFound(ExecutorError):
    """No container of this executor has that name."""


class CommandError(ExecutorError):
    """An external tool (runc, skopeo, umoci) failed or timed out."""
