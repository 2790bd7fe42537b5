"""The running network's trust material: CA certificates, the current CRL, organisation credentials.

`ensure_pki` issues (idempotently) a UZI-format certificate for every organisation in the
topology. `TrustStore` validates presented chains against the test CA and re-reads the CRL when
the file changes, so `ldn pki revoke` takes effect in a running network without a restart.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ldn.core.topology import Organization, Topology
from ldn.trust.pki import Participant, TestPki
from ldn.trust.uzi import UziServerIdentity
from ldn.trust.validation import validate_chain

_SHA256 = hashes.SHA256()
VALIDATION_CACHE_SECONDS = 60.0

# National service operators have no AGB; the UZI format still needs the field.
NO_AGB = "00000000"


def server_uzi_number(ura: str) -> str:
    """The UZI number we give an organisation's server certificate (synthetic, stable)."""
    return "9" + ura


def participant_for(org: Organization) -> Participant:
    return Participant(ura=org.ura, agb=org.agb or NO_AGB, uzi_number=server_uzi_number(org.ura), name=org.name[:64])


def ensure_pki(directory: Path, topology: Topology) -> TestPki:
    """Create or complete the test PKI for every organisation in the topology."""
    return TestPki.init(directory, [participant_for(o) for o in topology.all_organizations()])


@dataclass(frozen=True)
class Credential:
    """An organisation's certificate chain and key, as files (for TLS) and objects (for signing)."""

    ura: str
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    key: ec.EllipticCurvePrivateKey
    cert_file: Path
    key_file: Path
    chain_file: Path

    def __repr__(self) -> str:
        return f"Credential(ura={self.ura})"


class TrustStore:
    """Validation against the test CA, with the CRL reloaded whenever its file changes."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._crl: x509.CertificateRevocationList | None = None
        self._crl_mtime: float = -1.0
        self._validated: dict[tuple[object, ...], tuple[float, UziServerIdentity]] = {}
        ca = directory / "ca"
        self.root = x509.load_pem_x509_certificate((ca / "root.pem").read_bytes())
        self.issuing = x509.load_pem_x509_certificate((ca / "uzi-server-ca.pem").read_bytes())
        self.ca_bundle = ca / "bundle.pem"
        bundle = self.root.public_bytes(serialization.Encoding.PEM) + self.issuing.public_bytes(
            serialization.Encoding.PEM
        )
        if not self.ca_bundle.exists() or self.ca_bundle.read_bytes() != bundle:
            tmp = self.ca_bundle.with_suffix(".tmp")
            tmp.write_bytes(bundle)
            tmp.replace(self.ca_bundle)

    @property
    def crl_file(self) -> Path:
        return self.directory / "ca" / "crl.pem"

    def crl(self) -> x509.CertificateRevocationList | None:
        try:
            mtime = self.crl_file.stat().st_mtime
        except FileNotFoundError:
            return None
        with self._lock:
            if mtime != self._crl_mtime:
                self._crl = x509.load_pem_x509_crl(self.crl_file.read_bytes())
                self._crl_mtime = mtime
            return self._crl

    def validate(self, leaf: x509.Certificate, intermediates: list[x509.Certificate]) -> UziServerIdentity:
        """Validate a chain (untrusted CA, expiry, revocation) and return the UZI identity.

        Path building costs about a millisecond; a chain that validated is remembered for a
        minute (never beyond the leaf's expiry) and forgotten as soon as the CRL changes.
        """
        chain = intermediates or [self.issuing]
        crl = self.crl()
        key = (leaf.fingerprint(_SHA256), *(c.fingerprint(_SHA256) for c in chain), self._crl_mtime)
        now = time.time()
        with self._lock:
            hit = self._validated.get(key)
            if hit is not None and hit[0] > now:
                return hit[1]
        identity = validate_chain(leaf, chain, [self.root], crl=crl)
        until = min(now + VALIDATION_CACHE_SECONDS, leaf.not_valid_after_utc.timestamp())
        with self._lock:
            if len(self._validated) > 10_000:
                self._validated.clear()
            self._validated[key] = (until, identity)
        return identity

    def credential(self, ura: str) -> Credential:
        org_dir = self.directory / "orgs" / ura
        cert_file, key_file, chain_file = org_dir / "cert.pem", org_dir / "key.pem", org_dir / "chain.pem"
        if not cert_file.exists():
            raise LookupError(f"no credential for organisation {ura}")
        certificate = x509.load_pem_x509_certificate(cert_file.read_bytes())
        chain = tuple(x509.load_pem_x509_certificates(chain_file.read_bytes()))
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise LookupError(f"credential of {ura} is not an EC key")
        return Credential(ura, certificate, chain, key, cert_file, key_file, chain_file)


_STORES: dict[Path, TrustStore] = {}
_STORES_LOCK = threading.Lock()


def trust_store(directory: Path, topology: Topology | None = None) -> TrustStore:
    """The (cached) trust store for a PKI directory, creating the PKI first when a topology is given."""
    key = directory.resolve()
    with _STORES_LOCK:
        store = _STORES.get(key)
        if store is None:
            if topology is not None:
                ensure_pki(directory, topology)
            store = TrustStore(directory)
            _STORES[key] = store
        return store
