"""Mutual TLS for `ldn up --tls`: server SSL settings and the client certificate in the ASGI scope.

Uvicorn does not expose the peer certificate to the app, so a small protocol subclass puts it in
`scope["extensions"]["tls"]["client_cert_chain"]` as the ASGI TLS extension specifies. The TLS
layer itself refuses certificates not issued by the test CA; revocation is checked by the token
service against the CRL (the TLS handshake cannot reload a CRL without a restart).
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

from cryptography import x509
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol


def tls_client_certificate(scope: Scope) -> x509.Certificate | None:
    """The verified client certificate of this connection, when served over mutual TLS."""
    chain = scope.get("extensions", {}).get("tls", {}).get("client_cert_chain") or []
    if not chain:
        return None
    return x509.load_pem_x509_certificate(chain[0].encode("ascii"))


class _WithPeerCertificate:
    def __init__(self, app: ASGIApp, pem: str | None) -> None:
        self.app = app
        self.pem = pem

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.pem is not None:
            extensions = dict(scope.get("extensions") or {})
            extensions["tls"] = {"client_cert_chain": [self.pem], "tls_version": None, "cipher_suite": None}
            scope["extensions"] = extensions
        await self.app(scope, receive, send)


class PeerCertificateH11Protocol(H11Protocol):
    """H11 protocol that hands the TLS peer certificate to the app."""

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        pem = ssl.DER_cert_to_PEM_cert(der) if der else None
        self.app = _WithPeerCertificate(self.app, pem)


def server_ssl_options(cert_file: Path, key_file: Path, ca_bundle: Path) -> dict[str, Any]:
    """Uvicorn options: present our certificate, require a client certificate from the test CA."""
    return {
        "ssl_certfile": str(cert_file),
        "ssl_keyfile": str(key_file),
        "ssl_ca_certs": str(ca_bundle),
        "ssl_cert_reqs": ssl.CERT_REQUIRED,
        "http": PeerCertificateH11Protocol,
    }


class ClientCertificateMiddleware:
    """Refuses requests whose TLS client certificate is revoked (CRL) or not a UZI certificate.

    The TLS handshake already demands a certificate from the test CA; this adds the revocation
    check with the CRL re-read on change, so `ldn pki revoke` works without a restart.
    """

    def __init__(self, app: ASGIApp, *, validate: Any) -> None:
        self.app = app
        self.validate = validate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Every socket connection in TLS mode carries the peer certificate (the handshake demands
        # one); a request without the TLS extension came through the in-process transport.
        if scope["type"] == "http" and "tls" in (scope.get("extensions") or {}):
            certificate = tls_client_certificate(scope)
            problem = None
            if certificate is None:
                problem = "a client certificate is required"
            else:
                from ldn.trust.validation import CertificateValidationError

                try:
                    self.validate(certificate, [])
                except CertificateValidationError as exc:
                    problem = f"client certificate refused ({exc.reason_code})"
            if problem is not None:
                from ldn.core.errors import outcome_response

                response = outcome_response(401, "security", problem)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
