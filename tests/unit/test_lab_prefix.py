"""The lab's random prefix never reuses an old lab's directory (deploy/lab.py)."""
from unittest import mock

from deploy import lab


def test_a_new_lab_skips_a_prefix_whose_directory_exists(tmp_path):
    (tmp_path / "cv0001").mkdir()
    with mock.patch.object(lab.secrets, "token_hex", side_effect=["0001", "0002"]):
        assert lab.Lab(3, base=tmp_path).prefix == "cv0002"


def test_a_given_prefix_is_kept(tmp_path):
    (tmp_path / "cv0001").mkdir()
    assert lab.Lab(3, prefix="cv0001", base=tmp_path).prefix == "cv0001"
