"""Code systems and codes of addressing, in one place (documented in docs/addressing.md).

Where the Generic Functions IG (MinVWS, `generiekefuncties-docs`) defines a code we use it; each
published Endpoint also carries an ldn payload-type code, which names exactly what the endpoint
serves and is what the lookups match on.
"""

from __future__ import annotations

from ldn.core.identifiers import SYSTEM_AGB, SYSTEM_KVK, SYSTEM_URA

__all__ = [
    "AUTHORIZATION_TYPE_SYSTEM",
    "CONNECTION_TYPE_SYSTEM",
    "GF_AUTH_SERVER_SYSTEM",
    "GF_DATA_EXCHANGE_SYSTEM",
    "LDN_ORG_TYPE_SYSTEM",
    "LDN_SERVICE_TYPE_SYSTEM",
    "MANDATE_CODE",
    "NICTIZ_ORG_TYPE_SYSTEM",
    "PAYLOAD_TYPES",
    "PAYLOAD_TYPE_SYSTEM",
    "SYSTEM_AGB",
    "SYSTEM_KVK",
    "SYSTEM_URA",
]

# ldn payload types: what an Endpoint serves.
PAYLOAD_TYPE_SYSTEM = "https://ldn.example.org/fhir/CodeSystem/endpoint-payload-type"
PAYLOAD_TYPES: dict[str, str] = {
    "fhir-query-r4": "FHIR R4 query API of the care provider (pull / raadplegen)",
    "fhir-query-bgz": "FHIR query API serving the BgZ (Basisgegevensset Zorg)",
    "pull-notification": "Notified Pull notification endpoint (POST a notification Task)",
    "oauth-token": "OAuth 2.0 token endpoint of the provider's authorization server",
    "oauth-introspection": "OAuth 2.0 token introspection endpoint (RFC 7662)",
}

# Generic Functions IG code systems.
GF_DATA_EXCHANGE_SYSTEM = "http://minvws.github.io/generiekefuncties-docs/CodeSystem/nl-gf-data-exchange-capabilities"
GF_BGZ_SERVER = "http://nictiz.nl/fhir/CapabilityStatement/bgz2017-servercapabilities"
GF_TWIIN_NOTIFICATION = "Twiin-TA-notification"
GF_AUTH_SERVER_SYSTEM = "http://minvws.github.io/generiekefuncties-docs/CodeSystem/nl-gf-authorization-server-cs"
AUTHORIZATION_TYPE_SYSTEM = "http://minvws.github.io/generiekefuncties-docs/CodeSystem/nl-gf-authorization-type-cs"
MANDATE_CODE = "lrza-careprovider-admin"

CONNECTION_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/endpoint-connection-type"

# Organisation types: the Dutch organisation-type list (Nictiz) and ldn's own topology types.
NICTIZ_ORG_TYPE_SYSTEM = "http://nictiz.nl/fhir/NamingSystem/organization-type"
NICTIZ_ORG_TYPES: dict[str, tuple[str, str]] = {
    "huisartspraktijk": ("Z3", "Huisartspraktijk (zelfstandig of groepspraktijk)"),
    "ziekenhuis": ("V4", "Ziekenhuis"),
    "apotheek": ("J8", "Openbare apotheek"),
    "verpleeghuis": ("R5", "Verpleeghuis"),
    "ggz-instelling": ("G5", "Geestelijke Gezondheidszorg"),
    "laboratorium": ("L1", "Laboratorium"),
}
LDN_ORG_TYPE_SYSTEM = "https://ldn.example.org/fhir/CodeSystem/organization-type"

# HealthcareService types used when publishing the topology (ldn code system).
LDN_SERVICE_TYPE_SYSTEM = "https://ldn.example.org/fhir/CodeSystem/service-type"
SERVICE_TYPES: dict[str, str] = {
    "huisartsenzorg": "Huisartsenzorg",
    "ziekenhuiszorg": "Medisch-specialistische zorg",
    "farmaceutische-zorg": "Farmaceutische zorg",
    "verpleeghuiszorg": "Verpleeghuiszorg",
    "ggz": "Geestelijke gezondheidszorg",
    "laboratoriumonderzoek": "Laboratoriumonderzoek",
    "verwijzing-ontvangen": "Ontvangen van verwijzingen (Notified Pull)",
}
PRIMARY_SERVICE: dict[str, str] = {
    "huisartspraktijk": "huisartsenzorg",
    "ziekenhuis": "ziekenhuiszorg",
    "apotheek": "farmaceutische-zorg",
    "verpleeghuis": "verpleeghuiszorg",
    "ggz-instelling": "ggz",
    "laboratorium": "laboratoriumonderzoek",
}

# Extensions on LRZa Organization resources.
LRZA_SOURCE_EXTENSION = "https://ldn.example.org/fhir/StructureDefinition/lrza-authorized-source"
LRZA_VENDOR_EXTENSION = "https://ldn.example.org/fhir/StructureDefinition/lrza-software-vendor"

# meta.source of a stored version: the URA of the organisation that published it.
SOURCE_PREFIX = "urn:oid:2.16.528.1.1007.3.3."

IDENTIFIER_URI_SYSTEM = "urn:ietf:rfc:3986"


def source_uri(ura: str) -> str:
    """The `meta.source` naming the publishing organisation (OID-URN form of its URA)."""
    return f"{SOURCE_PREFIX}{ura}"


def source_ura(uri: object) -> str | None:
    """The URA in a `meta.source` value, or None when it names no URA."""
    if not isinstance(uri, str) or not uri.startswith(SOURCE_PREFIX):
        return None
    ura = uri[len(SOURCE_PREFIX) :]
    return ura if len(ura) == 8 and ura.isascii() and ura.isdigit() else None
