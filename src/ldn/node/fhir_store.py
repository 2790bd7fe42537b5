"""The node's FHIR store: patient data per node, indexed for the searches the node's FHIR API offers.

`node_fhir_resource` holds one row per resource: node URA, type, id, version, last update, the NVI
data category, a sensitivity label (`mental-health`), the clinical date the `date`-like search
parameter uses, the resource JSON, and `patient_bsn_hash`: HMAC-SHA256 of the patient's BSN under a
per-node key (`<data_dir>/node/<URA>/bsn-hash.key`, mode 0600, generated when missing). The BSN is
never stored in an indexed column: the index holds only the keyed hash, so a copy of the table
without the key file does not reveal who the rows are about. (The resource JSON is the clinical
record itself: the Patient resource carries the BSN as FHIR says it should.)

`node_fhir_token` holds the token search values (`code`, `category`, `status`, `class`, `type`) as
(system, code) pairs, one row per coding, so a token search is an indexed EXISTS.

Every search is scoped to one patient (the API refuses patient-less searches), so the leading index
(node_ura, patient_bsn_hash, resource_type, last_updated) bounds every query to one patient's rows.
Functions here take a Session and never commit.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import os
import secrets
import stat
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import (
    Column,
    ColumnElement,
    DateTime,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    and_,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    true,
)
from sqlalchemy.orm import Session

from ldn.core.identifiers import BSN, SYSTEM_BSN, IdentifierError
from ldn.core.storage import Base

logger = logging.getLogger("ldn.node.fhir_store")

__all__ = [
    "PATIENT_TYPES",
    "SEARCH_PARAMS",
    "BsnHasher",
    "DateFilter",
    "NewResource",
    "SearchCriteria",
    "SearchParam",
    "StoredResource",
    "TokenFilter",
    "clinical_date",
    "delete_node",
    "insert_resources",
    "is_empty",
    "node_fhir_resource",
    "node_fhir_token",
    "parse_instant",
    "patient_bsn_of",
    "patient_hash_of_id",
    "patient_resources",
    "read",
    "search",
    "stored_holdings",
    "tokens_of",
]

MAX_TOKEN_LENGTH = 255

node_fhir_resource = Table(
    "node_fhir_resource",
    Base.metadata,
    Column("node_ura", String(8), primary_key=True),
    Column("resource_type", String(64), primary_key=True),
    Column("resource_id", String(64), primary_key=True),
    Column("version_id", Integer, nullable=False),
    Column("last_updated", DateTime(timezone=True), nullable=False),
    Column("patient_bsn_hash", LargeBinary(32), nullable=True),  # HMAC-SHA256(node key, BSN)
    Column("category", String(64), nullable=False),  # NVI data category (SPEC §6)
    Column("sensitivity", String(32), nullable=True),  # e.g. "mental-health"
    Column("clinical_date", DateTime(timezone=True), nullable=True),
    Column("resource", Text, nullable=False),
    Index("ix_node_fhir_patient", "node_ura", "patient_bsn_hash", "resource_type", "last_updated"),
)

node_fhir_token = Table(
    "node_fhir_token",
    Base.metadata,
    Column("node_ura", String(8), primary_key=True),
    Column("resource_type", String(64), primary_key=True),
    Column("resource_id", String(64), primary_key=True),
    Column("param", String(32), primary_key=True),
    Column("system", String(MAX_TOKEN_LENGTH), primary_key=True),  # "" when the value has no system
    Column("code", String(MAX_TOKEN_LENGTH), primary_key=True),
    ForeignKeyConstraint(
        ["node_ura", "resource_type", "resource_id"],
        ["node_fhir_resource.node_ura", "node_fhir_resource.resource_type", "node_fhir_resource.resource_id"],
        ondelete="CASCADE",
        name="fk_node_fhir_token_resource",
    ),
    Index("ix_node_fhir_token_code", "node_ura", "resource_type", "param", "code"),
)

# Resource types that are patient data (every search on them is scoped to one patient).
PATIENT_TYPES = (
    "Patient",
    "AllergyIntolerance",
    "Condition",
    "Encounter",
    "MedicationRequest",
    "MedicationStatement",
    "Observation",
    "Procedure",
)


# ---------------------------------------------------------------------------------------- key


class BsnHasher:
    """HMAC-SHA256 of a BSN under one node's key; the only form in which a BSN is indexed."""

    KEY_BYTES = 32

    def __init__(self, key: bytes) -> None:
        if len(key) != self.KEY_BYTES:
            raise ValueError("a BSN hash key is 32 bytes")
        self._key = key

    def __call__(self, bsn: str) -> bytes:
        return hmac.new(self._key, b"bsn:" + bsn.encode("ascii"), hashlib.sha256).digest()

    def __repr__(self) -> str:
        return "BsnHasher(***)"

    @staticmethod
    def key_path(data_dir: Path, ura: str) -> Path:
        return data_dir / "node" / ura / "bsn-hash.key"

    @classmethod
    def for_node(cls, data_dir: Path, ura: str) -> BsnHasher:
        """Load the node's key, creating it (0600, directory 0700) when missing.

        A key file that is unreadable or malformed stops the node: silently making a new key
        would orphan every stored row (their hashes would no longer match any BSN)."""
        path = cls.key_path(data_dir, ura)
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            os.chmod(path.parent, 0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w", encoding="ascii") as handle:
                handle.write(secrets.token_hex(cls.KEY_BYTES) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            logger.warning("BSN hash key of node %s was readable by others (mode %o); set to 0600", ura, mode)
            os.chmod(path, 0o600)
        text = path.read_text(encoding="ascii").strip()
        try:
            key = bytes.fromhex(text)
        except ValueError:
            raise RuntimeError(f"BSN hash key file {path} is not hex") from None
        if len(key) != cls.KEY_BYTES:
            raise RuntimeError(f"BSN hash key file {path} does not hold {cls.KEY_BYTES} bytes")
        return cls(key)


# ---------------------------------------------------------------------------------------- search parameters


ParamType = Literal["token", "date", "reference", "special"]


def _codings(value: Any) -> list[tuple[str, str]]:
    """(system, code) pairs of a CodeableConcept, a Coding, a list of them, or a bare code."""
    if value is None:
        return []
    if isinstance(value, list):
        return [pair for item in value for pair in _codings(item)]
    if isinstance(value, str):
        return [("", value)]
    if isinstance(value, dict):
        if "coding" in value:
            return _codings(value["coding"])
        if "code" in value:
            return [(str(value.get("system") or ""), str(value["code"]))]
    return []


def _path(*keys: str) -> Callable[[Mapping[str, Any]], list[tuple[str, str]]]:
    def extract(resource: Mapping[str, Any]) -> list[tuple[str, str]]:
        value: Any = resource
        for key in keys:
            value = value.get(key) if isinstance(value, Mapping) else None
        return _codings(value)

    return extract


@dataclass(frozen=True)
class SearchParam:
    """A search parameter the node supports for one resource type."""

    name: str
    type: ParamType
    extract: Callable[[Mapping[str, Any]], list[tuple[str, str]]] | None = None  # token values


def _token(name: str, *keys: str) -> SearchParam:
    return SearchParam(name, "token", _path(*keys))


_COMMON = (SearchParam("_id", "special"), SearchParam("_lastUpdated", "date"))
_PATIENT_REF = (SearchParam("patient", "reference"), SearchParam("subject", "reference"))

SEARCH_PARAMS: Mapping[str, Mapping[str, SearchParam]] = {
    rtype: {p.name: p for p in (*_COMMON, *params)}
    for rtype, params in {
        "Patient": (SearchParam("identifier", "token"),),
        "AllergyIntolerance": (
            SearchParam("patient", "reference"),
            _token("code", "code"),
            _token("category", "category"),
            _token("clinical-status", "clinicalStatus"),
            SearchParam("date", "date"),
        ),
        "Condition": (
            *_PATIENT_REF,
            _token("code", "code"),
            _token("category", "category"),
            _token("clinical-status", "clinicalStatus"),
            SearchParam("onset-date", "date"),
        ),
        "Encounter": (
            *_PATIENT_REF,
            _token("class", "class"),
            _token("type", "type"),
            _token("status", "status"),
            SearchParam("date", "date"),
        ),
        "MedicationRequest": (
            *_PATIENT_REF,
            _token("code", "medicationCodeableConcept"),
            _token("category", "category"),
            _token("status", "status"),
            SearchParam("authoredon", "date"),
        ),
        "MedicationStatement": (
            *_PATIENT_REF,
            _token("code", "medicationCodeableConcept"),
            _token("category", "category"),
            _token("status", "status"),
            SearchParam("effective", "date"),
        ),
        "Observation": (
            *_PATIENT_REF,
            _token("code", "code"),
            _token("category", "category"),
            _token("status", "status"),
            SearchParam("date", "date"),
        ),
        "Procedure": (
            *_PATIENT_REF,
            _token("code", "code"),
            _token("category", "category"),
            _token("status", "status"),
            SearchParam("date", "date"),
        ),
    }.items()
}

# The element behind each type's clinical-date parameter (stored in `clinical_date`).
_CLINICAL_DATE_PATHS: Mapping[str, tuple[str, ...]] = {
    "AllergyIntolerance": ("recordedDate",),
    "Condition": ("onsetDateTime",),
    "Encounter": ("period", "start"),
    "MedicationRequest": ("authoredOn",),
    "MedicationStatement": ("effectivePeriod", "start"),
    "Observation": ("effectiveDateTime",),
    "Procedure": ("performedDateTime",),
}


def parse_instant(text: str) -> datetime:
    """A FHIR dateTime/instant with a time zone, as an aware UTC datetime."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def clinical_date(resource: Mapping[str, Any]) -> datetime | None:
    path = _CLINICAL_DATE_PATHS.get(str(resource.get("resourceType")))
    if path is None:
        return None
    value: Any = resource
    for key in path:
        value = value.get(key) if isinstance(value, Mapping) else None
    if not isinstance(value, str):
        return None
    try:
        return parse_instant(value)
    except ValueError:
        return None


def tokens_of(resource: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(param, system, code) rows for a resource; over-long values are not indexed."""
    params = SEARCH_PARAMS.get(str(resource.get("resourceType")), {})
    out: set[tuple[str, str, str]] = set()
    for param in params.values():
        if param.extract is None:
            continue
        for system, code in param.extract(resource):
            if code and len(code) <= MAX_TOKEN_LENGTH and len(system) <= MAX_TOKEN_LENGTH:
                out.add((param.name, system, code))
    return sorted(out)


# ---------------------------------------------------------------------------------------- rows


@dataclass(frozen=True)
class StoredResource:
    """A resource as stored: the JSON plus what the store knows about it."""

    resource_type: str
    resource_id: str
    version_id: int
    last_updated: datetime
    category: str
    sensitivity: str | None
    patient_bsn_hash: bytes | None
    resource: dict[str, Any]

    def __repr__(self) -> str:
        return f"StoredResource({self.resource_type}/{self.resource_id}, {self.category})"


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    # SQLite hands back naive datetimes; everything stored is UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _stored(row: Any) -> StoredResource:
    resource = json.loads(row.resource)
    return StoredResource(
        resource_type=row.resource_type,
        resource_id=row.resource_id,
        version_id=row.version_id,
        last_updated=_utc(row.last_updated) or datetime.min.replace(tzinfo=UTC),
        category=row.category,
        sensitivity=row.sensitivity,
        patient_bsn_hash=row.patient_bsn_hash,
        resource=resource,
    )


_COLUMNS = (
    node_fhir_resource.c.resource_type,
    node_fhir_resource.c.resource_id,
    node_fhir_resource.c.version_id,
    node_fhir_resource.c.last_updated,
    node_fhir_resource.c.category,
    node_fhir_resource.c.sensitivity,
    node_fhir_resource.c.patient_bsn_hash,
    node_fhir_resource.c.resource,
)


@dataclass(frozen=True)
class NewResource:
    """A resource to insert, with its patient's BSN already hashed."""

    resource: dict[str, Any]
    category: str
    sensitivity: str | None
    patient_bsn_hash: bytes | None

    def __repr__(self) -> str:
        return f"NewResource({self.resource.get('resourceType')}/{self.resource.get('id')})"


def is_empty(session: Session, ura: str) -> bool:
    found = session.execute(
        select(node_fhir_resource.c.resource_id).where(node_fhir_resource.c.node_ura == ura).limit(1)
    ).first()
    return found is None


def insert_resources(session: Session, ura: str, items: Sequence[NewResource], *, batch: int = 500) -> int:
    """Insert new resources (version 1 unless `meta.versionId` says otherwise) with their tokens."""
    resource_rows: list[dict[str, Any]] = []
    token_rows: list[dict[str, Any]] = []
    for item in items:
        res = item.resource
        rtype, rid = str(res["resourceType"]), str(res["id"])
        meta = res.get("meta") or {}
        last_updated = parse_instant(meta["lastUpdated"]) if meta.get("lastUpdated") else datetime.now(UTC)
        resource_rows.append(
            {
                "node_ura": ura,
                "resource_type": rtype,
                "resource_id": rid,
                "version_id": int(meta.get("versionId") or 1),
                "last_updated": last_updated,
                "patient_bsn_hash": item.patient_bsn_hash,
                "category": item.category,
                "sensitivity": item.sensitivity,
                "clinical_date": clinical_date(res),
                "resource": json.dumps(res, ensure_ascii=False, separators=(",", ":")),
            }
        )
        token_rows.extend(
            {"node_ura": ura, "resource_type": rtype, "resource_id": rid, "param": p, "system": s, "code": c}
            for p, s, c in tokens_of(res)
        )
    for start in range(0, len(resource_rows), batch):
        session.execute(insert(node_fhir_resource), resource_rows[start : start + batch])
    for start in range(0, len(token_rows), batch * 4):
        session.execute(insert(node_fhir_token), token_rows[start : start + batch * 4])
    return len(resource_rows)


def delete_node(session: Session, ura: str) -> int:
    """Remove every resource of one node (tests and `reload`)."""
    session.execute(delete(node_fhir_token).where(node_fhir_token.c.node_ura == ura))
    result = session.execute(delete(node_fhir_resource).where(node_fhir_resource.c.node_ura == ura))
    return int(getattr(result, "rowcount", 0) or 0)


def read(session: Session, ura: str, resource_type: str, resource_id: str) -> StoredResource | None:
    row = session.execute(
        select(*_COLUMNS).where(
            node_fhir_resource.c.node_ura == ura,
            node_fhir_resource.c.resource_type == resource_type,
            node_fhir_resource.c.resource_id == resource_id,
        )
    ).first()
    return _stored(row) if row is not None else None


def _bsn_from_patient(resource: Mapping[str, Any]) -> str | None:
    for identifier in resource.get("identifier") or []:
        if identifier.get("system") == SYSTEM_BSN:
            try:
                return BSN.parse(identifier.get("value")).value
            except IdentifierError:
                return None
    return None


def patient_bsn_of(session: Session, ura: str, bsn_hash: bytes) -> str | None:
    """The BSN behind a hash, from the node's own Patient resource (None when it has none)."""
    row = session.execute(
        select(node_fhir_resource.c.resource).where(
            node_fhir_resource.c.node_ura == ura,
            node_fhir_resource.c.patient_bsn_hash == bsn_hash,
            node_fhir_resource.c.resource_type == "Patient",
        )
    ).first()
    if row is None:
        return None
    return _bsn_from_patient(json.loads(row.resource))


def patient_hash_of_id(session: Session, ura: str, patient_id: str) -> bytes | None:
    row = session.execute(
        select(node_fhir_resource.c.patient_bsn_hash).where(
            node_fhir_resource.c.node_ura == ura,
            node_fhir_resource.c.resource_type == "Patient",
            node_fhir_resource.c.resource_id == patient_id,
        )
    ).first()
    return row.patient_bsn_hash if row is not None else None


# ---------------------------------------------------------------------------------------- search


@dataclass(frozen=True)
class TokenFilter:
    """One token parameter occurrence: any of `alternatives` (system, code) matches.

    system None: any system; system "": no system; code None: any code of the system."""

    param: str
    alternatives: tuple[tuple[str | None, str | None], ...]


DatePrefix = Literal["eq", "ne", "gt", "lt", "ge", "le", "sa", "eb"]


@dataclass(frozen=True)
class DateFilter:
    """One date parameter occurrence: any of `alternatives` (prefix, range start, range end) matches.

    The range is the interval the value's precision denotes: `2025-03` is [2025-03-01, 2025-04-01)."""

    column: Literal["last_updated", "clinical_date"]
    alternatives: tuple[tuple[DatePrefix, datetime, datetime], ...]


@dataclass(frozen=True)
class SearchCriteria:
    patient_bsn_hash: bytes
    ids: tuple[str, ...] | None = None
    tokens: tuple[TokenFilter, ...] = ()
    dates: tuple[DateFilter, ...] = ()

    def __repr__(self) -> str:
        return f"SearchCriteria(ids={self.ids}, tokens={self.tokens}, dates={self.dates})"


def _token_clause(resource_type: str, ura: str, flt: TokenFilter) -> ColumnElement[bool]:
    tk = node_fhir_token
    options: list[ColumnElement[bool]] = []
    for system, code in flt.alternatives:
        parts: list[ColumnElement[bool]] = []
        if system is not None:
            parts.append(tk.c.system == system)
        if code is not None:
            parts.append(tk.c.code == code)
        options.append(and_(*parts) if parts else true())
    return exists().where(
        tk.c.node_ura == ura,
        tk.c.resource_type == resource_type,
        tk.c.resource_id == node_fhir_resource.c.resource_id,
        tk.c.param == flt.param,
        or_(*options),
    )


def _date_clause(flt: DateFilter) -> ColumnElement[bool]:
    column = node_fhir_resource.c[flt.column]
    options: list[ColumnElement[bool]] = []
    for prefix, low, high in flt.alternatives:
        if prefix == "eq":
            options.append(and_(column >= low, column < high))
        elif prefix == "ne":
            options.append(or_(column < low, column >= high))
        elif prefix in ("gt", "sa"):
            options.append(column >= high)
        elif prefix == "ge":
            options.append(column >= low)
        elif prefix in ("lt", "eb"):
            options.append(column < low)
        else:  # le
            options.append(column < high)
    return and_(column.is_not(None), or_(*options))


def search(
    session: Session, ura: str, resource_type: str, criteria: SearchCriteria, *, count: int, offset: int
) -> tuple[list[StoredResource], int]:
    """One page of matches (newest first) and the total number of matches."""
    r = node_fhir_resource
    where: list[ColumnElement[bool]] = [
        r.c.node_ura == ura,
        r.c.patient_bsn_hash == criteria.patient_bsn_hash,
        r.c.resource_type == resource_type,
    ]
    if criteria.ids is not None:
        where.append(r.c.resource_id.in_(criteria.ids))
    where.extend(_token_clause(resource_type, ura, t) for t in criteria.tokens)
    where.extend(_date_clause(d) for d in criteria.dates)
    total = int(session.execute(select(func.count()).select_from(r).where(*where)).scalar_one())
    if count == 0 or offset >= total:
        return [], total
    rows = session.execute(
        select(*_COLUMNS).where(*where).order_by(r.c.last_updated.desc(), r.c.resource_id).limit(count).offset(offset)
    ).all()
    return [_stored(row) for row in rows], total


def patient_resources(
    session: Session, ura: str, bsn_hash: bytes, types: Iterable[str] = PATIENT_TYPES
) -> list[StoredResource]:
    """Everything the node holds about one patient, of the given types, oldest type order kept."""
    r = node_fhir_resource
    rows = session.execute(
        select(*_COLUMNS)
        .where(r.c.node_ura == ura, r.c.patient_bsn_hash == bsn_hash, r.c.resource_type.in_(list(types)))
        .order_by(r.c.resource_type, r.c.last_updated.desc(), r.c.resource_id)
    ).all()
    return [_stored(row) for row in rows]


def stored_holdings(session: Session, ura: str) -> dict[str, set[str]]:
    """BSN -> data categories, from what the store holds (the BSN read from each Patient resource)."""
    r = node_fhir_resource
    categories: dict[bytes, set[str]] = {}
    for row in session.execute(
        select(r.c.patient_bsn_hash, r.c.category)
        .where(r.c.node_ura == ura, r.c.patient_bsn_hash.is_not(None))
        .distinct()
    ):
        categories.setdefault(row.patient_bsn_hash, set()).add(row.category)
    out: dict[str, set[str]] = {}
    for row in session.execute(
        select(r.c.patient_bsn_hash, r.c.resource).where(r.c.node_ura == ura, r.c.resource_type == "Patient")
    ):
        bsn = _bsn_from_patient(json.loads(row.resource))
        if bsn is not None and row.patient_bsn_hash in categories:
            out[bsn] = categories[row.patient_bsn_hash]
    return out
