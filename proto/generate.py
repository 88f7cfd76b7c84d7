"""Regenerate the Python modules from every proto/*.proto.

    python3 proto/generate.py           # write proto/*_pb2*.py and the .pyi stubs
    python3 proto/generate.py --check   # exit 1 if the committed output is stale

grpc_tools emits `import objects_pb2`; we rewrite it to `from proto import objects_pb2`
so the generated code (and its type stubs) lives in the `proto` package.
"""
import re
import sys
import tempfile
from pathlib import Path

import grpc_tools
from grpc_tools import protoc

PROTO_DIR = Path(__file__).resolve().parent
INCLUDE = Path(grpc_tools.__file__).parent / "_proto"


def generate(out_dir: Path) -> None:
    sources = sorted(p.name for p in PROTO_DIR.glob("*.proto"))
    args = ["protoc", f"-I{PROTO_DIR}", f"-I{INCLUDE}", f"--python_out={out_dir}",
            f"--pyi_out={out_dir}", f"--grpc_python_out={out_dir}", *sources]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    local = {Path(s).stem + "_pb2" for s in sources}
    for path in [*out_dir.glob("*_pb2*.py"), *out_dir.glob("*_pb2.pyi")]:
        text = path.read_text()
        for mod in local:
            text = re.sub(rf"^import {mod} as", f"from proto import {mod} as", text, flags=re.M)
        path.write_text(text)
    # grpc_tools writes an empty *_pb2_grpc.py for protos without services: drop them
    for path in out_dir.glob("*_pb2_grpc.py"):
        if "class " not in path.read_text():
            path.unlink()


def main() -> int:
    if "--check" not in sys.argv:
        generate(PROTO_DIR)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        fresh = {p.name: p.read_text() for p in Path(tmp).glob("*_pb2*.py*")}
    current = {p.name: p.read_text() for p in PROTO_DIR.glob("*_pb2*.py*")}
    if fresh != current:
        stale = sorted(set(fresh) ^ set(current) | {n for n in fresh if fresh[n] != current.get(n)})
        print("stale generated code, run python3 proto/generate.py:", ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
