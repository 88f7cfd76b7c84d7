"""The one error the compose loader raises: it names the file, the path and the line."""
from covey.errors import InvalidArgument


def format_path(path) -> str:
    """("services", "web", "ports", 0) -> "services.web.ports.0"."""
    return ".".join(str(p) for p in path)


class ComposeError(InvalidArgument):
    def __init__(self, message: str, file: str | None = None, path=None, line: int | None = None):
        self.message = message
        self.file = file
        self.path = tuple(path) if path else ()
        self.line = line
        super().__init__(self._render())

    def _render(self) -> str:
        where = self.file or ""
        if where and self.line:
            where += f":{self.line}"
        parts = [p for p in (where, format_path(self.path)) if p]
        return (", ".join(parts) + ": " if parts else "") + self.message
