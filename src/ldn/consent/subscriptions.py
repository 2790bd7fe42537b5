"""FHIR R4 `Subscription` (rest-hook) for consent changes, and the notification Bundles it receives.

Accepted: criteria `Consent?patient:identifier=http://fhir.nl/fhir/NamingSystem/bsn|<bsn>` (the
`urn:oid:` system form too), `channel.type` rest-hook only (any other channel: 400 not-supported),
`channel.payload` application/fhir+json (id-only notifications are not offered), optional
`channel.header` lines sent with every notification, optional `end`.

SSRF: the service POSTs to the endpoint a subscriber names, so the endpoint is restricted to
http(s) URLs without credentials or fragment on (a) the network's own origins (the services and
nodes in the directory), (b) the origins configured in `LDN_CONSENT_ALLOWED_HOOK_ORIGINS`, or
(c) when `LDN_CONSENT_ALLOW_LOOPBACK_HOOKS` is on (test networks), a loopback address. Redirects
are never followed when delivering.

Notifications are FHIR R4 `history` Bundles (R4 has no subscription-notification Bundle type):
one entry per changed Consent, with request/response as a history Bundle requires. A withdrawn
choice is sent as its last content with `status=inactive`; an EHDS opt-out is sent as a Consent
in category `ehds-opt-out` (see `optout_consent`).
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from ldn.consent.fhir import (
    SYSTEM_ACT_CODE,
    SYSTEM_ACT_REASON_MITZ,
    SYSTEM_CONSENT_SCOPE,
    SYSTEM_LOINC,
    to_fhir_json,
)
from ldn.consent.model import ConsentChoice
from ldn.core.errors import LDN_CANONICAL, BadRequest
from ldn.core.fhir import now_instant, validate_resource
from ldn.core.http import origin_of
from ldn.core.identifiers import BSN, OID_BSN, SYSTEM_BSN, IdentifierError

__all__ = [
    "EHDS_OPTOUT_SYSTEM",
    "HEADER_EVENT",
    "HEADER_SUBSCRIPTION",
    "SubscriptionRequest",
    "check_endpoint",
    "choice_entry",
    "notification_bundle",
    "optout_consent",
    "optout_entry",
    "parse_subscription",
    "subscription_resource",
]

HEADER_SUBSCRIPTION = "X-Ldn-Subscription"
HEADER_EVENT = "X-Ldn-Event"
EHDS_OPTOUT_SYSTEM = f"{LDN_CANONICAL}/CodeSystem/ehds-opt-out"
SUPPORTED_PAYLOADS = frozenset({"application/fhir+json", "application/json"})
_BSN_SYSTEMS = frozenset({SYSTEM_BSN, f"urn:oid:{OID_BSN}"})
_HEADER_NAME = re.compile(r"\A[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}\Z")
_RESERVED_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "content-type",
        "transfer-encoding",
        "connection",
        "traceparent",
        "x-request-id",
        HEADER_SUBSCRIPTION.lower(),
        HEADER_EVENT.lower(),
    }
)
MAX_HEADERS = 10


@dataclass(frozen=True)
class SubscriptionRequest:
    bsn: str
    endpoint: str
    headers: tuple[tuple[str, str], ...]
    reason: str
    end: datetime | None

    def __repr__(self) -> str:  # no BSN, no header values (they may carry credentials)
        return f"SubscriptionRequest(endpoint={self.endpoint!r}, headers={len(self.headers)})"


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_endpoint(url: object, *, allowed_origins: Iterable[str], allow_loopback: bool) -> str:
    """The rest-hook endpoint if it is allowed (see module docstring), else a 400."""
    if not isinstance(url, str) or not url:
        raise BadRequest("channel.endpoint is required", code="required", expression=["Subscription.channel.endpoint"])
    if len(url) > 2000 or any(ch.isspace() or not ch.isprintable() for ch in url):
        raise BadRequest("channel.endpoint is not a usable URL", expression=["Subscription.channel.endpoint"])
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise BadRequest("channel.endpoint is not a valid URL", expression=["Subscription.channel.endpoint"]) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadRequest(
            "channel.endpoint must be an absolute http(s) URL", expression=["Subscription.channel.endpoint"]
        )
    if parts.username is not None or parts.password is not None or parts.fragment:
        raise BadRequest(
            "channel.endpoint must not carry credentials or a fragment", expression=["Subscription.channel.endpoint"]
        )
    allowed = {origin_of(o) for o in allowed_origins}
    if origin_of(url) in allowed or (allow_loopback and _is_loopback(parts.hostname)):
        return url
    raise BadRequest(
        "channel.endpoint is not on an origin this network delivers to (its own services and nodes, "
        "or the configured hook origins)",
        code="security",
        details_code="hook-origin-not-allowed",
        expression=["Subscription.channel.endpoint"],
    )


def _criteria_bsn(criteria: object) -> str:
    expected = "criteria must be Consent?patient:identifier=http://fhir.nl/fhir/NamingSystem/bsn|<bsn>"
    if not isinstance(criteria, str) or not criteria.startswith("Consent?"):
        raise BadRequest(expected, expression=["Subscription.criteria"])
    try:
        params = parse_qsl(criteria[len("Consent?") :], strict_parsing=True, keep_blank_values=True)
    except ValueError:
        raise BadRequest(expected, expression=["Subscription.criteria"]) from None
    if len(params) != 1 or params[0][0] != "patient:identifier":
        raise BadRequest(expected, expression=["Subscription.criteria"])
    system, sep, value = params[0][1].partition("|")
    if not sep or system not in _BSN_SYSTEMS:
        raise BadRequest(expected, expression=["Subscription.criteria"])
    try:
        return BSN.parse(value).value
    except IdentifierError as exc:
        raise BadRequest(f"criteria: {exc}", code="value", expression=["Subscription.criteria"]) from None


def _headers(values: object) -> tuple[tuple[str, str], ...]:
    if values is None:
        return ()
    if not isinstance(values, list) or len(values) > MAX_HEADERS:
        raise BadRequest(
            f"channel.header takes at most {MAX_HEADERS} lines", expression=["Subscription.channel.header"]
        )
    out = []
    for line in values:
        name, sep, value = str(line).partition(":")
        name, value = name.strip(), value.strip()
        if (
            not sep
            or not _HEADER_NAME.match(name)
            or len(value) > 1000
            or any(not ch.isprintable() for ch in value)
            or name.lower() in _RESERVED_HEADERS
        ):
            raise BadRequest(
                "channel.header lines must be 'Name: value' with a token name, a printable value, "
                "and not a reserved header",
                expression=["Subscription.channel.header"],
            )
        out.append((name, value))
    return tuple(out)


def parse_subscription(
    data: Any, *, allowed_origins: Iterable[str], allow_loopback: bool, now: datetime
) -> SubscriptionRequest:
    """Validate a Subscription against R4 and ldn's profile of it; every refusal is a 400."""
    resource = validate_resource(data, "Subscription")
    channel = resource.get("channel") or {}
    channel_type = channel.get("type")
    if channel_type != "rest-hook":
        raise BadRequest(
            f"subscription channel {channel_type!r} is not supported; use rest-hook",
            code="not-supported",
            details_code="channel-not-supported",
            expression=["Subscription.channel.type"],
        )
    if resource.get("status") not in ("requested", "active"):
        raise BadRequest("a new Subscription must have status requested", expression=["Subscription.status"])
    payload = channel.get("payload")
    if payload not in SUPPORTED_PAYLOADS:
        raise BadRequest(
            "channel.payload must be application/fhir+json (id-only notifications are not offered)",
            code="not-supported",
            expression=["Subscription.channel.payload"],
        )
    bsn = _criteria_bsn(resource.get("criteria"))
    endpoint = check_endpoint(channel.get("endpoint"), allowed_origins=allowed_origins, allow_loopback=allow_loopback)
    headers = _headers(channel.get("header"))
    end: datetime | None = None
    if resource.get("end") is not None:
        try:
            end = datetime.fromisoformat(str(resource["end"]).replace("Z", "+00:00"))
        except ValueError:
            raise BadRequest("end must be a FHIR instant", expression=["Subscription.end"]) from None
        if end.tzinfo is None or end <= now:
            raise BadRequest("end must be a future instant with a timezone", expression=["Subscription.end"])
    reason = str(resource.get("reason") or "").strip()
    if not reason or len(reason) > 1000:
        raise BadRequest("reason is required (at most 1000 characters)", expression=["Subscription.reason"])
    return SubscriptionRequest(bsn=bsn, endpoint=endpoint, headers=headers, reason=reason, end=end)


def _instant(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def subscription_resource(
    subscription_id: str,
    *,
    bsn: str,
    endpoint: str,
    headers: Sequence[tuple[str, str]],
    reason: str,
    status: str,
    end: datetime | None,
    error: str | None = None,
) -> dict[str, Any]:
    channel: dict[str, Any] = {"type": "rest-hook", "endpoint": endpoint, "payload": "application/fhir+json"}
    if headers:
        channel["header"] = [f"{name}: {value}" for name, value in headers]
    resource: dict[str, Any] = {
        "resourceType": "Subscription",
        "id": subscription_id,
        "status": status,
        "reason": reason,
        "criteria": f"Consent?patient:identifier={SYSTEM_BSN}|{bsn}",
        "channel": channel,
    }
    if end is not None:
        resource["end"] = _instant(end)
    if error:
        resource["error"] = error
    return resource


# -- notifications -----------------------------------------------------------------------------


def choice_entry(choice: ConsentChoice, base_url: str, *, withdrawn: bool = False) -> dict[str, Any]:
    """A history-Bundle entry for one version of a choice."""
    resource = to_fhir_json(choice)
    if withdrawn:
        resource["status"] = "inactive"  # no longer in force; content kept so the receiver knows which
    created = choice.version == 1 and not withdrawn
    return {
        "fullUrl": f"{base_url}/Consent/{choice.id}",
        "resource": resource,
        "request": {"method": "POST" if created else "PUT", "url": "Consent" if created else f"Consent/{choice.id}"},
        "response": {
            "status": "201 Created" if created else "200 OK",
            "etag": f'W/"{choice.version}"',
            "lastModified": _instant(choice.recorded_at),
        },
    }


def optout_consent(
    bsn: str, kind: str, *, objected: bool, version: int, recorded_at: datetime, resource_id: str
) -> dict[str, Any]:
    """An EHDS objection as a Consent: category ehds-opt-out#primary-use or #secondary-use, a deny."""
    purpose = "TREAT" if kind == "primary" else "HRESCH"
    return {
        "resourceType": "Consent",
        "id": resource_id,
        "meta": {"versionId": str(version)},
        "status": "active" if objected else "inactive",
        "scope": {"coding": [{"system": SYSTEM_CONSENT_SCOPE, "code": "patient-privacy"}]},
        "category": [
            {"coding": [{"system": EHDS_OPTOUT_SYSTEM, "code": f"{kind}-use", "display": f"EHDS {kind}-use opt-out"}]},
            {"coding": [{"system": SYSTEM_LOINC, "code": "59284-0", "display": "Patient Consent"}]},
        ],
        "patient": {"identifier": {"system": SYSTEM_BSN, "value": bsn}},
        "dateTime": _instant(recorded_at),
        "policyRule": {"coding": [{"system": SYSTEM_ACT_CODE, "code": "OPTOUT"}]},
        "provision": {"type": "deny", "purpose": [{"system": SYSTEM_ACT_REASON_MITZ, "code": purpose}]},
    }


def optout_entry(resource: Mapping[str, Any], base_url: str) -> dict[str, Any]:
    version = int(resource["meta"]["versionId"])
    return {
        "fullUrl": f"{base_url}/Consent/{resource['id']}",
        "resource": dict(resource),
        "request": {"method": "PUT", "url": f"Consent/{resource['id']}"},
        "response": {"status": "201 Created" if version == 1 else "200 OK", "etag": f'W/"{version}"'},
    }


def notification_bundle(entries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "type": "history",
        "timestamp": now_instant(),
        "entry": [dict(e) for e in entries],
    }
