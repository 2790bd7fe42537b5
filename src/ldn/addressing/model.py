"""Resource rules shared by the directory and the replicas: types, ids, time, references, chains.

Times are kept as integer microseconds since the epoch (exact, sortable on every database) and
shown as FHIR instants with microsecond precision. Every mCSD resource must chain up to a
top-level Organization with a URA; `chain_link` says, for one resource, where that chain goes
next, so the directory (strictly) and a replica (best effort) can follow it in their own stores.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ldn.addressing.codes import SYSTEM_URA
from ldn.core.errors import BadRequest, ServiceError

MCSD_TYPES: tuple[str, ...] = (
    "Organization",
    "Location",
    "HealthcareService",
    "Endpoint",
    "OrganizationAffiliation",
)
_ID = re.compile(r"\A[A-Za-z0-9\-.]{1,64}\Z")
_URA_OIDS = (SYSTEM_URA, "urn:oid:2.16.528.1.1007.3.3")


def check_id(value: str) -> str:
    """A FHIR logical id (1-64 of A-Z a-z 0-9 - .), else 400."""
    if not _ID.match(value):
        raise BadRequest(f"invalid resource id {value[:80]!r}", code="value")
    return value


def check_type(resource_type: str) -> str:
    """A resource type the directory holds, else 404 `not-supported`."""
    if resource_type not in MCSD_TYPES:
        raise ServiceError(
            f"resource type {resource_type[:40]!r} is not served here; the directory holds {', '.join(MCSD_TYPES)}",
            status=404,
            code="not-supported",
        )
    return resource_type


def now_us() -> int:
    return int(datetime.now(UTC).timestamp() * 1_000_000)


def us_to_instant(us: int) -> str:
    """Microseconds since the epoch as a FHIR instant (UTC, six fractional digits)."""
    moment = datetime.fromtimestamp(us / 1_000_000, UTC).replace(microsecond=us % 1_000_000)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def us_to_http_date(us: int) -> str:
    return datetime.fromtimestamp(us // 1_000_000, UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")


_DATE = re.compile(
    r"\A(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.(?P<f>\d{1,9}))?)?(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?\Z"
)


def parse_instant_range(value: str) -> tuple[int, int]:
    """A FHIR date/dateTime/instant as the half-open range [low, high) in microseconds.

    The range covers the value's precision: `2026` is the whole year, `2026-05-01T10:00` a minute.
    A time without a zone is read as UTC.
    """
    match = _DATE.match(value.strip())
    if not match:
        raise BadRequest(f"invalid date/time {value[:60]!r}", code="value")
    parts = match.groupdict()
    try:
        year = int(parts["y"])
        month = int(parts["m"] or 1)
        day = int(parts["d"] or 1)
        hour = int(parts["H"] or 0)
        minute = int(parts["M"] or 0)
        second = int(parts["S"] or 0)
        fraction = parts["f"] or ""
        micro = int((fraction + "000000")[:6])
        start = datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)
    except ValueError:
        raise BadRequest(f"invalid date/time {value[:60]!r}", code="value") from None
    offset_us = 0
    tz = parts["tz"]
    if tz and tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        offset_us = sign * (int(tz[1:3]) * 3600 + int(tz[4:6]) * 60) * 1_000_000
    low = int(start.timestamp()) * 1_000_000 + micro - offset_us
    if parts["f"]:
        width = 10 ** (6 - min(len(fraction), 6)) if len(fraction) < 6 else 1
        high = low + width
    elif parts["S"]:
        high = low + 1_000_000
    elif parts["M"]:
        high = low + 60_000_000
    elif parts["d"]:
        high = low + 86_400_000_000
    elif parts["m"]:
        nxt = datetime(year + (month // 12), month % 12 + 1, 1, tzinfo=UTC)
        high = int(nxt.timestamp()) * 1_000_000 - offset_us
    else:
        high = int(datetime(year + 1, 1, 1, tzinfo=UTC).timestamp()) * 1_000_000 - offset_us
    return low, high


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def instant_to_us(value: str) -> int:
    """The start of a FHIR instant in microseconds (for `meta.lastUpdated` and `_since`)."""
    if len(value) > 20 and value[10] == "T" and value[-1] == "Z":
        # The common, complete form: the C parser, then exact integer arithmetic.
        try:
            return (datetime.fromisoformat(value) - _EPOCH) // _MICROSECOND
        except ValueError:
            pass
    return parse_instant_range(value)[0]


_REFERENCE = re.compile(r"\A(?P<type>[A-Z][A-Za-z]+)/(?P<id>[A-Za-z0-9\-.]{1,64})(?:/_history/[A-Za-z0-9\-.]{1,64})?\Z")


def parse_reference(reference: object, base_url: str | None = None) -> tuple[str, str] | None:
    """(type, id) of a literal reference that points into this directory; None otherwise.

    Relative references (`Organization/1`) and absolute ones under `base_url` count; a reference
    to another server or a contained/urn reference does not.
    """
    if not isinstance(reference, str) or not reference or reference.startswith(("#", "urn:")):
        return None
    if "://" in reference:
        if base_url is None or not reference.startswith(base_url.rstrip("/") + "/"):
            return None
        reference = reference[len(base_url.rstrip("/")) + 1 :]
    match = _REFERENCE.match(reference)
    if not match:
        return None
    return match.group("type"), match.group("id")


def is_ura_system(system: object) -> bool:
    return isinstance(system, str) and system in _URA_OIDS


def ura_of(organization: dict[str, Any]) -> str | None:
    """The URA identifier of an Organization (the first one), or None."""
    for identifier in organization.get("identifier") or []:
        if isinstance(identifier, dict) and is_ura_system(identifier.get("system")):
            value = identifier.get("value")
            if isinstance(value, str):
                return value
    return None


def _ura_from_identifier(identifier: object) -> str | None:
    if isinstance(identifier, dict) and is_ura_system(identifier.get("system")):
        value = identifier.get("value")
        if isinstance(value, str):
            return value
    return None


@dataclass(frozen=True)
class ChainLink:
    """Where a resource's chain to its top-level Organization continues.

    Exactly one of: `ura` (the chain ends at the Organization with this URA; `self_is_top` when the
    resource is that Organization), `parent` (continue at this (type, id)), or neither (no chain).
    """

    ura: str | None = None
    parent: tuple[str, str] | None = None
    self_is_top: bool = False
    via: str = ""

    @property
    def broken(self) -> bool:
        return self.ura is None and self.parent is None


_PARENT_ELEMENTS: dict[str, tuple[tuple[str, str], ...]] = {
    "Organization": (("partOf", "Organization"),),
    "Location": (("managingOrganization", "Organization"), ("partOf", "Location")),
    "HealthcareService": (("providedBy", "Organization"),),
    "OrganizationAffiliation": (("organization", "Organization"),),
    "Endpoint": (("managingOrganization", "Organization"),),
}


def chain_link(resource_type: str, content: dict[str, Any], base_url: str | None = None) -> ChainLink:
    """The next step of a resource's chain up to a top-level Organization with a URA."""
    if resource_type == "Organization":
        ura = ura_of(content)
        if ura is not None:
            return ChainLink(ura=ura, self_is_top=True, via="identifier")
    for element, target in _PARENT_ELEMENTS.get(resource_type, ()):
        ref = content.get(element)
        if not isinstance(ref, dict):
            continue
        parsed = parse_reference(ref.get("reference"), base_url)
        if parsed is not None and parsed[0] == target:
            return ChainLink(parent=parsed, via=element)
        ura = _ura_from_identifier(ref.get("identifier"))
        if ura is not None and target == "Organization":
            return ChainLink(ura=ura, via=f"{element}.identifier")
    if resource_type == "Endpoint":
        # A custodian-assigned identifier (Generic Functions IG): identifier.assigner is the URA.
        for identifier in content.get("identifier") or []:
            if isinstance(identifier, dict) and isinstance(identifier.get("assigner"), dict):
                ura = _ura_from_identifier(identifier["assigner"].get("identifier"))
                if ura is not None:
                    return ChainLink(ura=ura, via="identifier.assigner")
    return ChainLink()


# How a soft delete marks each type inactive (no hard deletes in the directory).
def deactivated(resource_type: str, content: dict[str, Any]) -> dict[str, Any]:
    out = dict(content)
    if resource_type in ("Organization", "HealthcareService", "OrganizationAffiliation"):
        out["active"] = False
    elif resource_type == "Endpoint":
        out["status"] = "off"
    elif resource_type == "Location":
        out["status"] = "inactive"
    return out


def is_active(resource_type: str, content: dict[str, Any]) -> bool:
    """Whether a resource is in use (absent flags count as active, as FHIR intends)."""
    if resource_type in ("Organization", "HealthcareService", "OrganizationAffiliation"):
        return content.get("active", True) is not False
    if resource_type in ("Endpoint", "Location"):
        return bool(content.get("status", "active") == "active")
    return True


def without_server_meta(content: dict[str, Any]) -> dict[str, Any]:
    """The resource minus what the server sets (versionId, lastUpdated, source): for no-op checks."""
    out = dict(content)
    meta = out.get("meta")
    if isinstance(meta, dict):
        rest = {k: v for k, v in meta.items() if k not in ("versionId", "lastUpdated", "source")}
        if rest:
            out["meta"] = rest
        else:
            out.pop("meta")
    return out
