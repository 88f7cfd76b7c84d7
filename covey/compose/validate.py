"""Check a compose file against the Compose Specification's JSON schema, plus the
rules the schema cannot say (Docker's conflicts, references between sections)."""
import functools
import json
from pathlib import Path

import jsonschema

from covey.compose.errors import ComposeError
from covey.compose.merge import strip_tags
from covey.compose.yamlload import type_name

SCHEMA_PATH = Path(__file__).resolve().parent / "compose-spec.json"  # packaged with covey.compose


@functools.lru_cache(maxsize=1)
def _validator():
    schema = json.loads(SCHEMA_PATH.read_text())
    return jsonschema.Draft7Validator(schema)


def _describe(error) -> tuple[tuple, str]:
    """The path and a plain message for one schema error."""
    path = tuple(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(error.schema.get("properties", {}))
        extra = [k for k in error.instance if k not in allowed and not str(k).startswith("x-")]
        if extra:
            return path + (extra[0],), (f"unknown key {extra[0]!r} (only x- keys may be added)")
    if error.validator == "type":
        wanted = error.validator_value
        wanted = " or ".join(wanted) if isinstance(wanted, list) else wanted
        return path, f"must be {wanted}, not {type_name(error.instance)}"
    if error.validator in ("oneOf", "anyOf") and error.context:
        deepest = max(error.context, key=lambda e: len(e.absolute_path))
        if len(deepest.absolute_path) > len(error.absolute_path):
            return _describe(deepest)
        return path, f"{_short(error.instance)} is not a valid value here"
    return path, error.message


def _short(value) -> str:
    text = repr(value)
    return text if len(text) < 60 else text[:57] + "..."


def validate_schema(doc, data: dict) -> None:
    """Raise the most relevant schema error of one (interpolated) file."""
    data = strip_tags(data)
    if isinstance(data.get("version"), (int, float)):
        data = {**data, "version": str(data["version"])}
    error = jsonschema.exceptions.best_match(_validator().iter_errors(data))
    if error is None:
        return
    path, message = _describe(error)
    raise ComposeError(message, file=doc.name, path=path, line=doc.line_of(path))

