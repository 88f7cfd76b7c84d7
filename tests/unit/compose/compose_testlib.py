"""Helpers for the compose loader tests (a uniquely named module, not a conftest)."""
import textwrap
from pathlib import Path

from google.protobuf import json_format

from covey.compose import load_model, load_stack

REPO = Path(__file__).resolve().parents[3]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
GOLDEN = Path(__file__).resolve().parent / "golden"


def write(tmp_path: Path, text: str, name: str = "compose.yml") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def model(tmp_path, text, environ=None, **kwargs) -> dict:
    """The normalized model of one compose text (an empty environment unless given)."""
    return load_model([write(tmp_path, text)], environ=environ or {}, **kwargs).model


def stack(tmp_path, text, environ=None, name="s", **kwargs):
    spec, _ = load_stack([write(tmp_path, text)], environ=environ or {}, stack_name=name, **kwargs)
    return spec


def as_dict(message) -> dict:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)
