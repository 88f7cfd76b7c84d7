"""Tables in Docker's layout, and JSON for --format json."""
import json

from google.protobuf.json_format import MessageToDict


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    lines = []
    for row in [headers, *rows]:
        cells = [str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)]
        lines.append("   ".join(cells).rstrip())
    return "\n".join(lines)


def to_json(messages) -> str:
    return json.dumps([MessageToDict(m, preserving_proto_field_name=True) for m in messages], indent=2)
