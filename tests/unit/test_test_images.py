"""tests/support/images.py: an image holding a host program and the libraries it links."""
import json
import sys
import tarfile
from pathlib import Path

import pytest

from tests.support.images import Layout, with_libraries
from tests.support.images import TestImage as Image  # not "Test*": pytest would collect it

PROGRAM = sys.executable    # dynamically linked, present wherever the tests run


def test_a_program_comes_with_its_loader_and_libc():
    files = with_libraries(PROGRAM, "/usr/bin/prog")
    assert files["usr/bin/prog"] == PROGRAM
    assert any("ld-linux" in path for path in files), f"the loader: {files}"
    assert any(Path(path).name.startswith("libc.so") for path in files), f"libc: {files}"
    assert all(not path.startswith("/") for path in files), "paths inside the image are relative"


def test_a_file_that_is_not_a_program_is_refused_by_name(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a program\n")
    with pytest.raises(RuntimeError, match="notes.txt"):
        with_libraries(text, "/bin/notes")


def test_host_files_land_in_the_image_layer_with_their_mode(tmp_path):
    layout = Layout(tmp_path / "layout")
    digest = layout.add(Image("covey/prog", "1", {}, {}, {"usr/bin/prog": PROGRAM}), "prog")
    blobs = tmp_path / "layout" / "blobs" / "sha256"
    manifest = json.loads((blobs / digest.removeprefix("sha256:")).read_text())
    own = blobs / manifest["layers"][-1]["digest"].removeprefix("sha256:")
    with tarfile.open(own, "r:gz") as tar:
        member = tar.getmember("usr/bin/prog")
    assert member.size == Path(PROGRAM).stat().st_size
    assert member.mode & 0o111, "still executable"
