import pytest

from worker.executor.errors import ImageError
from worker.executor.reference import is_loopback_registry, parse_reference

D = "sha256:" + "a" * 64


@pytest.mark.parametrize("text,expect", [
    ("busybox", ("docker.io", "library/busybox", "latest", "")),
    ("user/app:1.2", ("docker.io", "user/app", "1.2", "")),
    ("127.0.0.1:5000/covey/httpd:v1", ("127.0.0.1:5000", "covey/httpd", "v1", "")),
    ("localhost/app", ("localhost", "app", "latest", "")),
    ("reg.example.com/a/b/c", ("reg.example.com", "a/b/c", "latest", "")),
    (f"reg.example.com:443/app@{D}", ("reg.example.com:443", "app", "", D)),
    (f"reg.io/app:v1@{D}", ("reg.io", "app", "v1", D)),
])
def test_parse(text, expect):
    r = parse_reference(text)
    assert (r.registry, r.repository, r.tag, r.digest) == expect


def test_digest_wins_for_skopeo():
    assert parse_reference(f"reg.io/app:v1@{D}").transport == f"docker://reg.io/app@{D}"
    assert parse_reference("reg.io/app:v1").transport == "docker://reg.io/app:v1"


@pytest.mark.parametrize("bad", ["", "App", "a b", "reg.io/app@sha256:xyz", "reg.io/app:",
                                 "reg.io/app:-x", " busybox"])
def test_invalid(bad):
    with pytest.raises(ImageError, match="invalid image reference"):
        parse_reference(bad)


def test_loopback_registries_are_insecure_by_default():
    assert is_loopback_registry("127.0.0.1:5000") and is_loopback_registry("localhost:5000")
    assert not is_loopback_registry("10.1.0.1:5000") and not is_loopback_registry("docker.io")
