"""The lab's stand-ins for real stack files' images (tests/support/standins.py)."""
import yaml

from tests.support import standins


def test_servers_get_the_web_stand_in_with_their_published_ports_retargeted():
    service = {"image": "nginx", "ports": ["8080:80", "53:53/udp", {"target": 443, "published": 8443}]}
    notes = standins.stand_in(service, "reg:5000")
    assert service["image"] == "reg:5000/covey/whoami:1"
    assert service["ports"] == ["8080:8080", "53:8080/udp", {"target": 8080, "published": 8443}]
    assert notes[0] == "image nginx -> reg:5000/covey/whoami:1"


def test_a_command_runs_in_busybox_and_host_binds_and_healthchecks_go():
    service = {"image": "alpine", "command": "date", "healthcheck": {"test": ["CMD", "pg_isready"]},
               "volumes": ["data:/data", "/var/run/docker.sock:/var/run/docker.sock", "./conf:/conf:ro",
                           {"type": "bind", "source": "/etc", "target": "/x"}, {"type": "volume", "target": "/v"}]}
    notes = standins.stand_in(service, "reg:5000")
    assert service["image"] == "reg:5000/covey/busybox:1" and "healthcheck" not in service
    assert service["volumes"] == ["data:/data", {"type": "volume", "target": "/v"}]
    assert len(notes) == 3


def test_every_fixture_loads_and_says_what_changed():
    for fixture in ("voting-app.yml", "voting-app-global.yml", "cronjob-date.yml"):
        text = standins.lab_stack(fixture, "reg:5000")
        assert text.startswith(f"# {fixture}, rewritten for the lab:")
        images = {s["image"] for s in yaml.safe_load(text)["services"].values()}
        assert images <= {"reg:5000/covey/whoami:1", "reg:5000/covey/busybox:1"}
