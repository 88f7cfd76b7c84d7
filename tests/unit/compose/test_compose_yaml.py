"""YAML read as Docker reads it, in UTF-8 or UTF-16, with lines for errors."""
import pytest

from covey.compose import ComposeError, load_model
from covey.compose.yamlload import decode, parse
from tests.unit.compose.compose_testlib import model, write


def test_yes_no_on_off_stay_strings(tmp_path):
    m = model(tmp_path, """
        services:
          web:
            image: nginx
            environment:
              DEBUG: yes
              VERBOSE: off
              FLAG: true
              Y: y
    """)
    assert m["services"]["web"]["environment"] == {"DEBUG": "yes", "VERBOSE": "off",
                                                   "FLAG": "true", "Y": "y"}


def test_legacy_and_new_octal_modes(tmp_path):
    data = parse("a: 0440\nb: 0o440\nc: 440\nd: 0x10\ne: 1_000\n", "f").data
    assert data == {"a": 0o440, "b": 0o440, "c": 440, "d": 16, "e": 1000}


def test_colon_numbers_are_not_base_60():
    assert parse("ports: [80:80, 1:30]\n", "f").data == {"ports": ["80:80", "1:30"]}


def test_timestamps_stay_strings():
    assert parse("a: 2024-01-02\n", "f").data == {"a": "2024-01-02"}


@pytest.mark.parametrize("codec,bom", [("utf-16-le", b"\xff\xfe"), ("utf-16-be", b"\xfe\xff"),
                                       ("utf-8", b"\xef\xbb\xbf")])
def test_byte_order_marks(tmp_path, codec, bom):
    text = "services:\r\n  web:\r\n    image: nginx\r\n"
    path = tmp_path / "c.yml"
    path.write_bytes(bom + text.encode(codec))
    assert load_model([str(path)], environ={}).model["services"]["web"]["image"] == "nginx"


def test_invalid_utf8_is_a_clean_error():
    with pytest.raises(ComposeError, match="not valid UTF-8"):
        decode(b"a: \xc3\x28", "f.yml")


def test_anchors_and_merge_keys(tmp_path):
    m = model(tmp_path, """
        x-common: &common
          image: busybox
          environment: {A: "1"}
        services:
          a:
            <<: *common
            command: ["true"]
          b:
            <<: *common
            environment: {B: "2"}
    """)
    assert m["services"]["a"]["image"] == "busybox"
    assert m["services"]["a"]["environment"] == {"A": "1"}
    assert m["services"]["b"]["environment"] == {"B": "2"}


def test_duplicate_keys_are_errors_with_both_lines(tmp_path):
    path = write(tmp_path, "services:\n  web:\n    image: a\n    image: b\n")
    with pytest.raises(ComposeError) as info:
        load_model([path], environ={})
    assert info.value.line == 4 and "line 3" in str(info.value) and path in str(info.value)


def test_syntax_error_names_file_and_line(tmp_path):
    path = write(tmp_path, "services:\n  web:\n    image: [a\n")
    with pytest.raises(ComposeError) as info:
        load_model([path], environ={})
    assert info.value.file == path and info.value.line == 4
    assert "invalid YAML" in str(info.value)


def test_top_level_must_be_a_mapping(tmp_path):
    with pytest.raises(ComposeError, match="must be a mapping, not a list"):
        load_model([write(tmp_path, "- a\n- b\n")], environ={})


def test_alias_bomb_is_refused():
    rows = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i, name in enumerate("bcdefg"):
        prev = "abcdef"[i]
        rows.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]")
    with pytest.raises(ComposeError, match="aliases"):
        parse("\n".join(rows), "bomb.yml")


def test_line_of_every_path():
    doc = parse("services:\n  web:\n    ports:\n      - 80\n      - 81\n", "f")
    assert doc.line_of(("services", "web", "ports", 1)) == 5
    assert doc.line_of(("services", "web", "ports", 1, "target")) == 5
