"""Several files merge by the Compose Specification's rules."""
import io

import pytest

from covey.compose import ComposeError, load_model
from tests.unit.compose.compose_testlib import write

BASE = """
services:
  web:
    image: web:1
    command: ["serve", "--port", "80"]
    environment: [A=1, B=2]
    labels: {tier: front}
    ports: ["8080:80", "9090:90"]
    volumes: ["data:/data", "/host:/cfg:ro"]
    dns: [1.1.1.1]
    deploy:
      replicas: 2
      labels: [x=1]
      update_config: {parallelism: 1, delay: 10s}
    logging: {driver: json-file, options: {max-size: 10m}}
    networks: [front]
networks:
  front: {}
volumes:
  data: {}
"""


def merged(tmp_path, override, environ=None):
    first = write(tmp_path, BASE, "a.yml")
    second = write(tmp_path, override, "b.yml")
    return load_model([first, second], environ=environ or {}).model


def test_mappings_merge_and_scalars_override(tmp_path):
    web = merged(tmp_path, """
        services:
          web:
            image: web:2
            deploy: {update_config: {delay: 5s}}
    """)["services"]["web"]
    assert web["image"] == "web:2"
    assert web["deploy"]["replicas"] == 2
    assert web["deploy"]["update_config"] == {"parallelism": 1, "delay": "5s"}


def test_command_is_replaced_not_appended(tmp_path):
    web = merged(tmp_path, "services: {web: {command: [run]}}\n")["services"]["web"]
    assert web["command"] == ["run"]


def test_list_or_mapping_fields_merge_as_mappings(tmp_path):
    web = merged(tmp_path, """
        services:
          web:
            environment: {B: "20", C: "3"}
            labels: [owner=me]
            deploy: {labels: {y: "2"}}
    """)["services"]["web"]
    assert web["environment"] == {"A": "1", "B": "20", "C": "3"}
    assert web["labels"] == {"tier": "front", "owner": "me"}
    assert web["deploy"]["labels"] == {"x": "1", "y": "2"}


def test_ports_and_volumes_are_unique_by_target(tmp_path):
    web = merged(tmp_path, """
        services:
          web:
            ports: ["8080:80", "7070:70"]
            volumes: ["/other:/cfg"]
    """)["services"]["web"]
    assert [(p.get("published"), p["target"]) for p in web["ports"]] == [(8080, 80), (9090, 90),
                                                                         (7070, 70)]
    assert [(v["source"], v["target"]) for v in web["volumes"]] == [("data", "/data"),
                                                                    ("/other", "/cfg")]


def test_plain_sequences_append_without_duplicates(tmp_path):
    web = merged(tmp_path, "services: {web: {dns: [1.1.1.1, 8.8.8.8]}}\n")["services"]["web"]
    assert web["dns"] == ["1.1.1.1", "8.8.8.8"]


def test_logging_with_another_driver_replaces(tmp_path):
    same = merged(tmp_path, "services: {web: {logging: {options: {max-file: '3'}}}}\n")
    assert same["services"]["web"]["logging"] == {"driver": "json-file",
                                                  "options": {"max-size": "10m", "max-file": "3"}}
    other = merged(tmp_path, "services: {web: {logging: {driver: syslog}}}\n")
    assert other["services"]["web"]["logging"] == {"driver": "syslog"}


def test_reset_and_override_tags(tmp_path):
    web = merged(tmp_path, """
        services:
          web:
            ports: !reset []
            environment: !override {ONLY: "1"}
    """)["services"]["web"]
    assert "ports" not in web and web["environment"] == {"ONLY": "1"}


def test_new_services_and_networks_are_added(tmp_path):
    m = merged(tmp_path, """
        services:
          worker: {image: w, networks: [back]}
        networks:
          back: {driver: overlay}
    """)
    assert set(m["services"]) == {"web", "worker"} and set(m["networks"]) == {"front", "back"}


def test_relative_paths_resolve_against_the_first_file(tmp_path):
    sub = tmp_path / "sub"
    sub.mkdir()
    first = write(tmp_path, "services: {web: {image: x}}\n", "a.yml")
    second = write(sub, "services: {web: {volumes: ['./site:/site']}}\n", "b.yml")
    web = load_model([first, second], environ={}).model["services"]["web"]
    assert web["volumes"][0]["source"] == str(tmp_path / "site")


def test_stdin_as_a_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = write(tmp_path, BASE, "a.yml")
    stdin = io.BytesIO(b"services: {web: {image: from-stdin}}\n")
    m = load_model([first, "-"], environ={}, stdin=stdin).model
    assert m["services"]["web"]["image"] == "from-stdin"


def test_error_in_the_second_file_names_it(tmp_path):
    first = write(tmp_path, BASE, "a.yml")
    second = write(tmp_path, "services:\n  web:\n    bogus: 1\n", "b.yml")
    with pytest.raises(ComposeError) as info:
        load_model([first, second], environ={})
    assert (info.value.file, info.value.line) == (second, 3)
