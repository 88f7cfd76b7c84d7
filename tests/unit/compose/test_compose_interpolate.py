"""Interpolation: every syntax, every source of variables, and typed casts."""
import pytest

from covey.compose import ComposeError, load_model
from covey.compose.interpolate import interpolate
from tests.unit.compose.compose_testlib import model, write

ENV = {"SET": "value", "EMPTY": ""}


@pytest.mark.parametrize("text,expected", [
    ("$SET", "value"), ("${SET}", "value"), ("a${SET}b", "avalueb"),
    ("${UNSET:-dflt}", "dflt"), ("${EMPTY:-dflt}", "dflt"), ("${SET:-dflt}", "value"),
    ("${UNSET-dflt}", "dflt"), ("${EMPTY-dflt}", ""),
    ("${SET:+alt}", "alt"), ("${UNSET:+alt}", ""), ("${EMPTY+alt}", "alt"),
    ("${UNSET:-${SET}}", "value"), ("${UNSET:-${ALSO:-deep}-x}", "deep-x"),
    ("$$SET", "$SET"), ("$${SET}", "${SET}"), ("cost: $$5", "cost: $5"),
    ("${EMPTY?msg}", ""), ("${SET:?msg}", "value"),
])
def test_syntax(text, expected):
    assert interpolate({"k": text}, ENV)[0] == {"k": expected}


@pytest.mark.parametrize("text,message", [
    ("${UNSET:?please set it}", "required variable UNSET is missing a value: please set it"),
    ("${EMPTY:?}", "required variable EMPTY is missing a value"),
    ("${UNSET?no}", "required variable UNSET is missing a value: no"),
    ("${SET", "never closed"), ("$ x", "invalid interpolation format"),
    ("${9X}", "does not start with a variable name"), ("${SET!x}", "unexpected"),
])
def test_errors(text, message):
    with pytest.raises(ComposeError, match=message):
        interpolate({"k": text}, ENV)


def test_error_names_file_path_and_line(tmp_path):
    path = write(tmp_path, """
        services:
          web:
            image: nginx
            deploy:
              labels:
                - "host=${DOMAIN?Variable not set}"
    """)
    with pytest.raises(ComposeError) as info:
        load_model([path], environ={})
    err = info.value
    assert (err.file, err.path, err.line) == (path, ("services", "web", "deploy", "labels", 0), 7)
    assert "DOMAIN" in str(err) and "Variable not set" in str(err)


def test_unset_variables_warn_once(tmp_path):
    loaded = load_model([write(tmp_path, "services: {a: {image: '$X', hostname: '${X}'}}\n")],
                        environ={})
    assert [w for w in loaded.warnings if "X variable" in w] == [
        "the X variable is not set: substituting an empty string"]


def test_keys_are_not_interpolated(tmp_path):
    m = model(tmp_path, "services: {a: {image: x, labels: {'$K': '$V'}}}\n", environ={"K": "k", "V": "v"})
    assert m["services"]["a"]["labels"] == {"$K": "v"}


def test_dotenv_beside_first_file(tmp_path):
    (tmp_path / ".env").write_text("TAG=1.2\nexport REPL=4\n")
    m = model(tmp_path, "services: {a: {image: 'nginx:${TAG}', deploy: {replicas: '${REPL}'}}}\n")
    assert m["services"]["a"]["image"] == "nginx:1.2"
    assert m["services"]["a"]["deploy"]["replicas"] == 4


def test_process_environment_overrides_dotenv(tmp_path):
    (tmp_path / ".env").write_text("TAG=from-dotenv\n")
    m = model(tmp_path, "services: {a: {image: 'n:${TAG}'}}\n", environ={"TAG": "from-env"})
    assert m["services"]["a"]["image"] == "n:from-env"


def test_env_file_flag_replaces_dotenv(tmp_path):
    (tmp_path / ".env").write_text("TAG=from-dotenv\nOTHER=x\n")
    extra = tmp_path / "prod.env"
    extra.write_text("# prod\nTAG='quoted $NOPE'\n")
    m = model(tmp_path, "services: {a: {image: 'n:${TAG}', hostname: '${OTHER:-none}'}}\n",
              env_files=[str(extra)])
    assert m["services"]["a"]["image"] == "n:quoted $NOPE"
    assert m["services"]["a"]["hostname"] == "none"


def test_missing_env_file_flag_is_an_error(tmp_path):
    with pytest.raises(ComposeError, match="cannot read env file"):
        model(tmp_path, "services: {a: {image: x}}\n", env_files=[str(tmp_path / "nope.env")])


def test_typed_fields_cast_after_interpolation(tmp_path):
    m = model(tmp_path, """
        services:
          a:
            image: x
            read_only: "${RO}"
            deploy:
              replicas: ${N:-3}
              update_config: {parallelism: "${P}", max_failure_ratio: "${R}"}
            ports: [{target: "${T}", published: 8080}]
            secrets: [{source: s, mode: "${MODE}"}]
        networks:
          n: {external: "${EXT}"}
        secrets:
          s: {file: ./s}
    """, environ={"RO": "yes", "P": "2", "R": "0.5", "T": "80", "MODE": "0440", "EXT": "false"})
    a = m["services"]["a"]
    assert a["read_only"] is True and a["deploy"]["replicas"] == 3
    assert a["deploy"]["update_config"] == {"parallelism": 2, "max_failure_ratio": 0.5}
    assert a["ports"][0]["target"] == 80 and a["secrets"][0]["mode"] == 0o440
    assert m["networks"]["n"]["external"] is False


def test_uncastable_value_is_a_schema_error_with_path(tmp_path):
    path = write(tmp_path, "services:\n  a:\n    image: x\n    deploy:\n      replicas: ${N}\n")
    with pytest.raises(ComposeError) as info:
        load_model([path], environ={"N": "three"})
    assert info.value.path == ("services", "a", "deploy", "replicas") and info.value.line == 5


def test_skip_interpolation_keeps_variables(tmp_path):
    m = model(tmp_path, "services: {a: {image: 'n:${TAG:?required}'}}\n", skip_interpolation=True)
    assert m["services"]["a"]["image"] == "n:${TAG:?required}"
