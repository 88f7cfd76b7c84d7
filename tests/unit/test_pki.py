import datetime

import pytest

from covey import pki, tls
from covey.errors import InvalidArgument
from covey.ids import ID_LENGTH, base36, new_id
from proto import objects_pb2 as pb


@pytest.fixture(scope="module")
def ca():
    return pki.create_root_ca("cluster1")


def test_ids_are_25_base36_chars_and_unique():
    ids = {new_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(len(i) == ID_LENGTH and set(i) <= set("0123456789abcdefghijklmnopqrstuvwxyz") for i in ids)
    assert base36(35, 2) == "0z" and base36(36, 2) == "10"
    with pytest.raises(ValueError):
        base36(36**3, 2)


def test_token_format_and_parsing(ca):
    digest = pki.ca_digest(ca[0])
    secret = pki.new_token_secret()
    token = pki.make_token(digest, secret)
    assert token.startswith("CVYTKN-1-") and len(digest) == 50 and len(secret) == 25
    assert pki.parse_token(token) == (digest, secret)
    assert pki.parse_token(f"  {token}\n") == (digest, secret)


@pytest.mark.parametrize("bad", ["", "CVYTKN-1-abc-def", "SWMTKN-1-" + "a" * 50 + "-" + "b" * 25,
                                 "CVYTKN-2-" + "a" * 50 + "-" + "b" * 25,
                                 "CVYTKN-1-" + "A" * 50 + "-" + "b" * 25,
                                 "CVYTKN-1-" + "a" * 49 + "-" + "b" * 25])
def test_malformed_tokens_are_invalid(bad):
    with pytest.raises(InvalidArgument, match="invalid join token"):
        pki.parse_token(bad)


def test_digest_pins_the_exact_ca(ca):
    other, _ = pki.create_root_ca("cluster1")
    assert pki.ca_digest(ca[0]) == pki.ca_digest(ca[0])
    assert pki.ca_digest(ca[0]) != pki.ca_digest(other)


def test_node_certificate_fields(ca):
    key = pki.new_key_pem()
    cert = pki.sign_node_cert(ca[0], ca[1], pki.make_csr(key), "node1", pb.WORKER, "cluster1")
    ident = pki.cert_identity(cert)
    assert (ident.node_id, ident.role, ident.cluster_id) == ("node1", pb.WORKER, "cluster1")
    life = ident.not_after - datetime.datetime.now(datetime.UTC)
    assert datetime.timedelta(days=89) < life <= datetime.timedelta(days=90)
    assert pki.verify_signed_by(cert, ca[0])
    manager = pki.cert_identity(pki.sign_node_cert(ca[0], ca[1], pki.make_csr(key), "m", pb.MANAGER, "c"))
    assert manager.role == pb.MANAGER


def test_ca_certificate_lives_20_years(ca):
    from cryptography import x509
    cert = x509.load_pem_x509_certificate(ca[0])
    years = (cert.not_valid_after_utc - cert.not_valid_before_utc).days / 365
    assert 19.9 < years < 20.1
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_foreign_and_anonymous_certificates_do_not_verify(ca):
    other = pki.create_root_ca("cluster1")
    key = pki.new_key_pem()
    foreign = pki.sign_node_cert(other[0], other[1], pki.make_csr(key), "n", pb.MANAGER, "cluster1")
    assert not pki.verify_signed_by(foreign, ca[0])
    _, anon = tls.anonymous_identity()
    assert not pki.verify_signed_by(anon, ca[0])
    with pytest.raises(ValueError):
        pki.cert_identity(anon)  # no role: never a node identity


def test_csr_garbage_is_a_clear_error(ca):
    with pytest.raises(InvalidArgument, match="certificate signing request"):
        pki.sign_node_cert(ca[0], ca[1], b"garbage", "n", pb.WORKER, "c")


def test_anonymous_ca_is_stable_across_processes():
    """Server and joiner derive the same public anonymous CA key independently."""
    from cryptography import x509
    a = x509.load_pem_x509_certificate(tls.anonymous_ca_pem()).public_key().public_numbers()
    b = x509.load_pem_x509_certificate(tls.anonymous_ca_pem()).public_key().public_numbers()
    assert a == b


def test_renewal_point_is_counted_from_issuance(ca):
    """Not from the not-before, which is backdated for clock skew: a 100 s certificate is
    renewed 50 s to 80 s after it was issued."""
    before = pki._now()
    cert = pki.sign_node_cert(ca[0], ca[1], pki.make_csr(pki.new_key_pem()), "n", pb.WORKER, "c",
                              datetime.timedelta(seconds=100))
    early = (pki.renewal_due(cert, 0.5) - before).total_seconds()
    late = (pki.renewal_due(cert, 0.8) - before).total_seconds()
    assert 49 < early < 51 and 79 < late < 81
