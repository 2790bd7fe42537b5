"""Mutual TLS for the embedded network (`ldn up --tls`).

The process presents the certificate of the network's own operator (the organisation running
the registry), requires a client certificate from the test CA on every connection, and checks
each presented certificate against the current CRL.
"""

from __future__ import annotations

from typing import Any

from ldn.auth.settings import AuthSettings
from ldn.auth.tls import ClientCertificateMiddleware, server_ssl_options
from ldn.auth.trust_store import trust_store
from ldn.core.config import CoreSettings
from ldn.core.topology import Topology


def _store(settings: CoreSettings, topology: Topology) -> Any:
    return trust_store(AuthSettings().resolved_pki_dir(settings.data_dir), topology)


def enable_tls(settings: CoreSettings, topology: Topology) -> tuple[CoreSettings, dict[str, Any]]:
    """Settings with an https base URL, and uvicorn's SSL options."""
    store = _store(settings, topology)
    operator = topology.operator_of("registry")
    if operator is None:
        raise LookupError("the topology names no operator for the registry")
    credential = store.credential(operator.ura)
    base = settings.public_base_url or f"https://{settings.host}:{settings.port}"
    updated = settings.model_copy(update={"public_base_url": base})
    return updated, server_ssl_options(credential.chain_file, credential.key_file, store.ca_bundle)


def protect_with_client_certificates(network: Any, settings: CoreSettings, topology: Topology) -> None:
    store = _store(settings, topology)
    network.app.add_middleware(ClientCertificateMiddleware, validate=store.validate)
    network.http.verify = str(store.ca_bundle)
