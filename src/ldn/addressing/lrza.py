"""The LRZa (Landelijk Register Zorgaanbieders): the authoritative register of care providers.

One row per care provider (URA, name, type, KvK, AGB, active, its software vendor) plus the
sources allowed to publish its addressing data: the provider itself, and every organisation it
mandated with an active OrganizationAffiliation (code `lrza-careprovider-admin`) in the mCSD
directory. The directory consults this register before accepting a write, and replicas consult it
(over FHIR) before accepting an Organization: the anti-spoofing rule.

SQL functions take a Session and never commit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from ldn.addressing.codes import (
    LDN_ORG_TYPE_SYSTEM,
    LRZA_SOURCE_EXTENSION,
    LRZA_VENDOR_EXTENSION,
    NICTIZ_ORG_TYPE_SYSTEM,
    NICTIZ_ORG_TYPES,
    SYSTEM_AGB,
    SYSTEM_KVK,
    SYSTEM_URA,
)
from ldn.addressing.model import now_us, us_to_instant
from ldn.addressing.searchparams import normalize
from ldn.addressing.store import write_lock
from ldn.addressing.tables import lrza_mandates, lrza_providers
from ldn.core.topology import Topology

P, M = lrza_providers, lrza_mandates


@dataclass(frozen=True)
class Provider:
    ura: str
    name: str
    org_type: str
    kvk: str | None = None
    agb: str | None = None
    city: str | None = None
    vendor_name: str | None = None
    vendor_kvk: str | None = None
    active: bool = True

    def columns(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "name_norm": normalize(self.name)[:200],
            "org_type": self.org_type,
            "kvk": self.kvk,
            "agb": self.agb,
            "city": self.city,
            "vendor_name": self.vendor_name,
            "vendor_kvk": self.vendor_kvk,
            "active": self.active,
        }


@dataclass(frozen=True)
class Registration:
    provider: Provider
    version_id: int
    last_updated: int
    sources: tuple[str, ...]


def providers_from_topology(topology: Topology) -> list[Provider]:
    """The register's content for a topology: every participant (care provider)."""
    vendors = {v.id: v for v in topology.vendors}
    out = []
    for org in topology.organizations:
        vendor = vendors.get(org.vendor) if org.vendor else None
        out.append(
            Provider(
                ura=org.ura,
                name=org.name,
                org_type=org.type,
                kvk=org.kvk,
                agb=org.agb,
                city=org.city or None,
                vendor_name=vendor.name if vendor else None,
                vendor_kvk=vendor.kvk if vendor else None,
            )
        )
    return out


def _next_timestamp(session: Session) -> int:
    last = session.info.get("lrza_last_ts")
    if last is None:
        last = session.execute(select(func.max(P.c.last_updated))).scalar() or 0
    stamp = max(now_us(), int(last) + 1)
    session.info["lrza_last_ts"] = stamp
    return stamp


def upsert_providers(session: Session, providers: Iterable[Provider]) -> int:
    """Register or update providers; unchanged ones keep their version. Returns how many changed."""
    write_lock(session)
    wanted = {p.ura: p for p in providers}
    existing = (
        {row.ura: row for row in session.execute(select(P).where(P.c.ura.in_(list(wanted)))).all()} if wanted else {}
    )
    changed = 0
    new_rows = []
    for ura, provider in wanted.items():
        columns = provider.columns()
        row = existing.get(ura)
        if row is None:
            new_rows.append({"ura": ura, **columns, "version_id": 1, "last_updated": _next_timestamp(session)})
            changed += 1
        elif any(getattr(row, k) != v for k, v in columns.items()):
            session.execute(
                update(P)
                .where(P.c.ura == ura)
                .values(**columns, version_id=row.version_id + 1, last_updated=_next_timestamp(session))
            )
            changed += 1
    for start in range(0, len(new_rows), 1000):
        session.execute(insert(P), new_rows[start : start + 1000])
    return changed


def _touch(session: Session, uras: Iterable[str]) -> None:
    for ura in sorted(set(uras)):
        session.execute(
            update(P).where(P.c.ura == ura).values(version_id=P.c.version_id + 1, last_updated=_next_timestamp(session))
        )


def is_registered(session: Session, ura: str) -> bool:
    return session.execute(select(P.c.active).where(P.c.ura == ura)).scalar() is True


def authorized_sources(session: Session, ura: str) -> frozenset[str] | None:
    """URAs allowed to publish for `ura` (itself plus mandated parties); None when not registered
    or not active."""
    if not is_registered(session, ura):
        return None
    mandated = session.execute(select(M.c.publisher_ura).where(M.c.ura == ura)).scalars().all()
    return frozenset({ura, *mandated})


def set_mandate(session: Session, affiliation_id: str, ura: str | None, publisher_ura: str | None) -> None:
    """Make the mandate recorded for one OrganizationAffiliation equal to (ura -> publisher) or none."""
    old = session.execute(select(M.c.ura, M.c.publisher_ura).where(M.c.affiliation_id == affiliation_id)).all()
    new = {(ura, publisher_ura)} if ura and publisher_ura and ura != publisher_ura else set()
    current = {(r[0], r[1]) for r in old}
    if current == new:
        return
    session.execute(delete(M).where(M.c.affiliation_id == affiliation_id))
    for owner, publisher in new:
        session.execute(insert(M).values(ura=owner, publisher_ura=publisher, affiliation_id=affiliation_id))
    # The provider's published record changes (its sources), so replicas see a new version.
    _touch(session, [u for u, _ in current | new])


def get_registration(session: Session, ura: str) -> Registration | None:
    row = session.execute(select(P).where(P.c.ura == ura)).first()
    if row is None:
        return None
    return _registrations(session, [row])[0]


def _registrations(session: Session, rows: Sequence[Any]) -> list[Registration]:
    uras = [r.ura for r in rows]
    mandates: dict[str, set[str]] = {u: set() for u in uras}
    for start in range(0, len(uras), 500):
        chunk = uras[start : start + 500]
        for owner, publisher in session.execute(select(M.c.ura, M.c.publisher_ura).where(M.c.ura.in_(chunk))).all():
            mandates[owner].add(publisher)
    out = []
    for row in rows:
        provider = Provider(
            ura=row.ura,
            name=row.name,
            org_type=row.org_type,
            kvk=row.kvk,
            agb=row.agb,
            city=row.city,
            vendor_name=row.vendor_name,
            vendor_kvk=row.vendor_kvk,
            active=row.active,
        )
        sources = (row.ura, *sorted(mandates[row.ura]))
        out.append(Registration(provider, row.version_id, row.last_updated, sources))
    return out


def search(
    session: Session, conditions: Sequence[Any], *, cursor: str | None, limit: int, want_total: bool
) -> tuple[list[Registration], int | None, str | None]:
    """Registrations matching all `conditions`, by URA after `cursor`: (page, total, next cursor)."""
    total = None
    if want_total:
        total = int(session.execute(select(func.count()).select_from(P).where(*conditions)).scalar() or 0)
    if limit == 0:
        return [], total, None
    query = select(P).where(*conditions)
    if cursor is not None:
        query = query.where(P.c.ura > cursor)
    rows = session.execute(query.order_by(P.c.ura).limit(limit + 1)).all()
    next_cursor = rows[limit - 1].ura if len(rows) > limit else None
    if total is None and next_cursor is None and cursor is None:
        total = len(rows)
    return _registrations(session, rows[:limit]), total, next_cursor


def as_fhir(registration: Registration) -> dict[str, Any]:
    """A register entry as a FHIR R4 Organization (id = URA)."""
    p = registration.provider
    identifiers = [{"use": "official", "system": SYSTEM_URA, "value": p.ura}]
    if p.agb:
        identifiers.append({"system": SYSTEM_AGB, "value": p.agb})
    if p.kvk:
        identifiers.append({"system": SYSTEM_KVK, "value": p.kvk})
    codings = []
    nictiz = NICTIZ_ORG_TYPES.get(p.org_type)
    if nictiz:
        codings.append({"system": NICTIZ_ORG_TYPE_SYSTEM, "code": nictiz[0], "display": nictiz[1]})
    codings.append({"system": LDN_ORG_TYPE_SYSTEM, "code": p.org_type})
    extensions: list[dict[str, Any]] = [
        {"url": LRZA_SOURCE_EXTENSION, "valueIdentifier": {"system": SYSTEM_URA, "value": source}}
        for source in registration.sources
    ]
    if p.vendor_kvk:
        extensions.append(
            {
                "url": LRZA_VENDOR_EXTENSION,
                "valueReference": {
                    "identifier": {"system": SYSTEM_KVK, "value": p.vendor_kvk},
                    "display": p.vendor_name or p.vendor_kvk,
                },
            }
        )
    resource: dict[str, Any] = {
        "resourceType": "Organization",
        "id": p.ura,
        "meta": {"versionId": str(registration.version_id), "lastUpdated": us_to_instant(registration.last_updated)},
        "extension": extensions,
        "identifier": identifiers,
        "active": p.active,
        "type": [{"coding": codings}],
        "name": p.name,
    }
    if p.city:
        resource["address"] = [{"city": p.city, "country": "NL"}]
    return resource


def sources_from_fhir(resource: dict[str, Any]) -> frozenset[str]:
    """The authorised sources listed on an LRZa Organization."""
    out = set()
    for ext in resource.get("extension") or []:
        if isinstance(ext, dict) and ext.get("url") == LRZA_SOURCE_EXTENSION:
            value = (ext.get("valueIdentifier") or {}).get("value")
            if isinstance(value, str):
                out.add(value)
    return frozenset(out)


def high_water_mark(session: Session) -> int:
    return int(session.execute(select(func.max(P.c.last_updated))).scalar() or 0)
