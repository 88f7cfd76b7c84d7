"""Mutual TLS for every TCP connection of the swarm.

grpc-python can either require a verified client certificate or request none
at all; it cannot "verify one if given". A node that is joining has no
certificate yet, so it presents an *anonymous* one, signed by a CA whose key is
derived from a public constant: anyone can make such a certificate, and it
grants exactly what having no certificate grants (fetch the CA, present a
token). Authorization (manager/ca/authz.py) therefore trusts only identities whose
certificate verifies against the cluster's own CA, never the anonymous CA.
"""
import datetime
import hashlib
import socket
import ssl

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from covey import pki
from covey.addr import split
from covey.errors import Unavailable

_ANON_SEED = b"covey anonymous bootstrap identity v1 -- this key is public by design"
_ANON_CA_NAME = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "covey-anonymous-ca")])
CHANNEL_OPTIONS = [("grpc.ssl_target_name_override", pki.MANAGER_SAN),
                   ("grpc.keepalive_time_ms", 10_000),
                   ("grpc.keepalive_timeout_ms", 5_000),
                   ("grpc.keepalive_permit_without_calls", 1),
                   ("grpc.http2.max_pings_without_data", 0)]
SERVER_OPTIONS = [("grpc.keepalive_permit_without_calls", 1),
                  ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
                  ("grpc.http2.max_pings_without_data", 0)]


def _anon_ca_key():
    scalar = int.from_bytes(hashlib.sha256(_ANON_SEED).digest(), "big")
    return ec.derive_private_key(scalar, ec.SECP256R1())


def _self_signed(key, name: x509.Name, ca: bool, issuer_key=None, issuer=None) -> bytes:
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(issuer or name)
            .public_key(key.public_key())
            .serial_number(1 if ca else x509.random_serial_number())
            .not_valid_before(datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .sign(issuer_key or key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


def anonymous_ca_pem() -> bytes:
    return _self_signed(_anon_ca_key(), _ANON_CA_NAME, ca=True)


def anonymous_identity() -> tuple[bytes, bytes]:
    """(key PEM, cert PEM) of a fresh anonymous client certificate."""
    key_pem = pki.new_key_pem()
    key = serialization.load_pem_private_key(key_pem, password=None)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "covey-anonymous")])
    return key_pem, _self_signed(key, name, ca=False, issuer_key=_anon_ca_key(), issuer=_ANON_CA_NAME)


def server_credentials(load) -> grpc.ServerCredentials:
    """Credentials that follow the node's certificate: `load()` returns (key, cert, CA) PEMs
    as they are now, and a renewed certificate is served from the next handshake on."""
    def configuration(key_pem: bytes, cert_pem: bytes, ca_cert_pem: bytes):
        return grpc.ssl_server_certificate_configuration(
            [(key_pem, cert_pem + pki.issuing_ca(cert_pem, ca_cert_pem))],
            root_certificates=ca_cert_pem + anonymous_ca_pem())

    current = [load()]

    def fetch():
        latest = load()
        if latest == current[0] or not _pair(latest[0], latest[1]):
            return None  # unchanged, or a renewal half written: keep the one in use
        current[0] = latest
        return configuration(*latest)

    return grpc.dynamic_ssl_server_credentials(configuration(*current[0]), fetch,
                                               require_client_authentication=True)


def _pair(key_pem: bytes, cert_pem: bytes) -> bool:
    """True when the certificate is for this private key."""
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        return False
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return key.public_key().public_bytes(*spki) == cert.public_key().public_bytes(*spki)


def channel_credentials(ca_cert_pem: bytes, key_pem: bytes, cert_pem: bytes) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(ca_cert_pem, key_pem, cert_pem)


def secure_channel(addr: str, ca_cert_pem: bytes, key_pem: bytes, cert_pem: bytes) -> grpc.aio.Channel:
    return grpc.aio.secure_channel(addr, channel_credentials(ca_cert_pem, key_pem, cert_pem),
                                   options=CHANNEL_OPTIONS)


def fetch_unverified_ca(addr: str, timeout: float) -> bytes:
    """The root CA that the server at `addr` sends at the end of its TLS chain.

    Unverified on purpose: the caller must compare its digest with the join
    token's before trusting it (no trust on first use).
    """
    host, port = split(addr)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    import tempfile
    key_pem, cert_pem = anonymous_identity()
    with tempfile.NamedTemporaryFile() as bundle:
        bundle.write(key_pem + cert_pem)
        bundle.flush()
        ctx.load_cert_chain(bundle.name)
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            with ctx.wrap_socket(sock, server_hostname=pki.MANAGER_SAN) as tls:
                chain = _unverified_chain(tls)
    except (OSError, ssl.SSLError) as exc:
        raise Unavailable(f"cannot reach a manager at {addr}: {exc}") from None
    if not chain:
        raise Unavailable(f"the server at {addr} sent no certificate chain")
    return chain[-1].encode()


def _unverified_chain(tls: ssl.SSLSocket) -> list[str]:
    # Public since Python 3.13; a private method of the same name since 3.10, which typeshed
    # (rightly) does not know: hence the ignore.
    getter = (getattr(tls, "get_unverified_chain", None)
              or tls._sslobj.get_unverified_chain)  # type: ignore[attr-defined]
    return [c if isinstance(c, str) else c.public_bytes() for c in getter()]
