"""The swarm's PKI: root CA, node certificates, join tokens (docs/design.md, "Security").

A node certificate says who the node is: CN = node ID, OU = its role
(`covey-manager` / `covey-worker`), O = the cluster ID.
"""
import base64
import binascii
import datetime
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from covey.errors import InvalidArgument
from covey.ids import base36
from proto import objects_pb2 as pb

ROLE_OU = {pb.MANAGER: "covey-manager", pb.WORKER: "covey-worker"}
OU_ROLE = {ou: role for role, ou in ROLE_OU.items()}
# Every manager certificate carries this name: clients pin the CA, not an address.
MANAGER_SAN = "covey-manager"
CA_LIFETIME = datetime.timedelta(days=20 * 365)
NODE_CERT_LIFETIME = datetime.timedelta(days=90)
TOKEN_PREFIX = "CVYTKN"
TOKEN_VERSION = "1"
DIGEST_LEN = 50   # SHA-256 in base36
SECRET_LEN = 25   # 128 bits in base36
_TOKEN_RE = re.compile(rf"^{TOKEN_PREFIX}-{TOKEN_VERSION}-([0-9a-z]{{{DIGEST_LEN}}})-([0-9a-z]{{{SECRET_LEN}}})$")

INVALID_TOKEN = "invalid join token"
# Certificates are valid from a little before they are issued, for clocks that lag.
CLOCK_SKEW = datetime.timedelta(minutes=5)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def new_key_pem() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _load_key(key_pem: bytes):
    return serialization.load_pem_private_key(key_pem, password=None)


def create_root_ca(cluster_id: str, rotation: str = "") -> tuple[bytes, bytes]:
    """A new self-signed root CA: (cert PEM, key PEM). A rotation's CA has a name of its own
    (`rotation`): trusted side by side with the old one, a name shared by both would make TLS
    check certificates against the wrong key."""
    key_pem = new_key_pem()
    key = _load_key(key_pem)
    common_name = f"covey-root-ca {rotation}" if rotation else "covey-root-ca"
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, cluster_id)])
    now = _now()
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW)
            .not_valid_after(now + CA_LIFETIME)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def ca_digest(ca_cert_pem: bytes) -> str:
    """The CA fingerprint that join tokens carry: SHA-256 of the PEM bundle, base36."""
    return base36(int.from_bytes(hashlib.sha256(ca_cert_pem).digest(), "big"), DIGEST_LEN)


# ---------------------------------------------------------------- join tokens

def new_token_secret() -> str:
    return base36(secrets.randbits(128), SECRET_LEN)


def make_token(digest: str, secret: str) -> str:
    return f"{TOKEN_PREFIX}-{TOKEN_VERSION}-{digest}-{secret}"


def parse_token(token: str) -> tuple[str, str]:
    """(CA digest, secret) of a well-formed token; InvalidArgument otherwise."""
    match = _TOKEN_RE.match(token.strip())
    if not match:
        raise InvalidArgument(f"{INVALID_TOKEN}: a token looks like {TOKEN_PREFIX}-1-<50 characters>-<25 characters>")
    return match.group(1), match.group(2)


def token_matches(presented: str, expected: str) -> bool:
    return hmac.compare_digest(presented.encode(), expected.encode())


# ---------------------------------------------------------------- unlock keys

UNLOCK_KEY_PREFIX = "CVYKEY-1-"
UNLOCK_KEY_SIZE = 32
INVALID_UNLOCK_KEY = "invalid unlock key"


def new_unlock_key() -> bytes:
    return secrets.token_bytes(UNLOCK_KEY_SIZE)


def format_unlock_key(key: bytes) -> str:
    """Docker's SWMKEY-1-<base64> shape, under Covey's prefix."""
    return UNLOCK_KEY_PREFIX + base64.b64encode(key).decode().rstrip("=")


def parse_unlock_key(text: str) -> bytes:
    """The key an unlock key names; InvalidArgument for anything that is not one."""
    text = text.strip()
    shape = f"{INVALID_UNLOCK_KEY}: an unlock key looks like {UNLOCK_KEY_PREFIX}<43 characters>"
    if not text.startswith(UNLOCK_KEY_PREFIX):
        raise InvalidArgument(shape)
    body = text[len(UNLOCK_KEY_PREFIX):]
    try:
        key = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidArgument(shape) from None
    if len(key) != UNLOCK_KEY_SIZE:
        raise InvalidArgument(shape)
    return key


# ---------------------------------------------------------------- root CA rotation

def trust_bundle(root_ca: pb.RootCA) -> bytes:
    """The CAs a node trusts: the current one first, then (during a rotation) the previous."""
    return root_ca.ca_cert_pem + root_ca.previous_ca_cert_pem


def current_ca(bundle_pem: bytes) -> bytes:
    """The first certificate of a trust bundle: the CA that signs new certificates."""
    first = x509.load_pem_x509_certificates(bundle_pem)[0]
    return first.public_bytes(serialization.Encoding.PEM)


def issuing_ca(cert_pem: bytes, bundle_pem: bytes) -> bytes:
    """The CA of the bundle that issued `cert_pem` (the first one when none did): a TLS chain
    ends with it alone, a second self-signed root in a chain makes clients refuse it."""
    cas = [ca.public_bytes(serialization.Encoding.PEM) for ca in x509.load_pem_x509_certificates(bundle_pem)]
    return next((ca for ca in cas if validity_if_issued_by(cert_pem, ca)), cas[0])


# ---------------------------------------------------------------- node certificates

def make_csr(key_pem: bytes) -> bytes:
    """A CSR carrying only the public key: the CA decides every name in the certificate."""
    key = _load_key(key_pem)
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "covey-node")]))
           .sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.PEM)


def sign_node_cert(ca_cert_pem: bytes, ca_key_pem: bytes, csr_pem: bytes, node_id: str,
                   role: pb.NodeRole, cluster_id: str,
                   lifetime: datetime.timedelta = NODE_CERT_LIFETIME) -> bytes:
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError as exc:
        raise InvalidArgument(f"invalid certificate signing request: {exc}") from None
    if not csr.is_signature_valid:
        raise InvalidArgument("invalid certificate signing request: bad signature")
    if not isinstance(csr.public_key(), ec.EllipticCurvePublicKey):
        raise InvalidArgument("invalid certificate signing request: the key must be ECDSA")
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, node_id),
                         x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ROLE_OU[role]),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, cluster_id)])
    now = _now()
    sans = [x509.DNSName(node_id)] + ([x509.DNSName(MANAGER_SAN)] if role == pb.MANAGER else [])
    cert = (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(ca_cert.subject)
            .public_key(csr.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW)
            .not_valid_after(now + lifetime)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH,
                                                  x509.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(_load_key(ca_key_pem), hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class Identity:
    node_id: str
    role: pb.NodeRole
    cluster_id: str
    not_after: datetime.datetime


def cert_identity(cert_pem: bytes) -> Identity:
    """Who a node certificate names. ValueError if it is not a Covey node certificate."""
    cert = x509.load_pem_x509_certificate(cert_pem)

    def one(oid) -> str:
        attrs = cert.subject.get_attributes_for_oid(oid)
        if len(attrs) != 1:
            raise ValueError(f"certificate subject must have exactly one {oid._name}")
        value = attrs[0].value
        if not isinstance(value, str):  # only a few attributes (not these) may be bytes
            raise ValueError(f"certificate subject's {oid._name} is not a string")
        return value

    ou = one(NameOID.ORGANIZATIONAL_UNIT_NAME)
    if ou not in OU_ROLE:
        raise ValueError(f"certificate has an unknown role {ou!r}")
    return Identity(one(NameOID.COMMON_NAME), OU_ROLE[ou], one(NameOID.ORGANIZATION_NAME),
                    cert.not_valid_after_utc)


def validity_if_issued_by(cert_pem: bytes, ca_cert_pem: bytes) -> tuple[datetime.datetime, datetime.datetime] | None:
    """(not before, not after) when `cert_pem` was issued by this CA (or one of this bundle's);
    None when it was not."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    for ca in x509.load_pem_x509_certificates(ca_cert_pem):  # a bundle during a CA rotation
        try:
            cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError, Exception):  # InvalidSignature has no common base
            continue
        return cert.not_valid_before_utc, cert.not_valid_after_utc
    return None


def within(validity: tuple[datetime.datetime, datetime.datetime]) -> bool:
    not_before, not_after = validity
    return not_before <= _now() <= not_after


def verify_signed_by(cert_pem: bytes, ca_cert_pem: bytes) -> bool:
    """True when `cert_pem` was issued by this CA and is within its validity."""
    validity = validity_if_issued_by(cert_pem, ca_cert_pem)
    return validity is not None and within(validity)


def renewal_due(cert_pem: bytes, fraction: float) -> datetime.datetime:
    """When to renew: `fraction` (0.5 to 0.8, chosen at random by the caller) into its life,
    counted from when it was issued (not from the backdated not-before)."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    issued, end = cert.not_valid_before_utc + CLOCK_SKEW, cert.not_valid_after_utc
    return issued + (end - issued) * fraction
