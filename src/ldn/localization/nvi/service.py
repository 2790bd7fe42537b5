"""The NVI service layer: registration, search, read and delete of localization records (SPEC §6).

From an NVI identifier to a lookup key: decode ``{"evaluated_output", "blind_factor"}``, open the
PRS envelope with the NVI's private key (checking that the PRS made it, for this NVI, recently),
unblind with the blind factor to ``skS * HashToGroup(input)`` and hash that element under each
readable storage key. Nothing of it is stored except the hash under the current storage key and
the element sealed under the data key (for re-keying); nothing of it is ever logged or echoed.

A registration Bundle is all-or-nothing: every entry is parsed, authorised and pseudonymised
before the single database transaction starts, and any failure rejects the whole Bundle.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import anyio.to_thread
import httpx
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ldn.auth.resource_server import Caller
from ldn.core.errors import BadRequest, Forbidden, NotFound, Unavailable, operation_outcome
from ldn.core.fhir import bundle_entries
from ldn.core.storage import Database
from ldn.localization import oprf
from ldn.localization.categories import UnknownCategoryError, parse_category_token
from ldn.localization.envelope import (
    EnvelopeError,
    EnvelopeOpener,
    OriginError,
    WrongRecipientError,
    decode_nvi_identifier,
)
from ldn.localization.nvi import store
from ldn.localization.nvi.keys import StorageKeyManager, StorageKeys
from ldn.localization.nvi.records import NVI_IDENTIFIER_SYSTEM, ListRegistration, parse_registration_list
from ldn.localization.settings import NviSettings

logger = logging.getLogger("ldn.nvi")

# Fetch the PRS origin keys again at most this often when an origin tag does not verify.
_ORIGIN_REFRESH_INTERVAL = 30.0
# Pseudonymise in a worker thread from this many identifiers on (keeps the event loop free).
_THREAD_THRESHOLD = 4
_REGISTRATION_RETRIES = 3


def deleted_outcome(count: int) -> dict[str, Any]:
    """The OperationOutcome answering a delete by query: how many records went."""
    return operation_outcome("informational", f"deleted {count} record(s)", severity="information")


def authorize_search(caller: Caller) -> None:
    """May this caller find other custodians' records? (the single place, later a PDP call).

    For now: a professional must be behind the request (a user role in the token); a system
    alone may only see its own organisation's records (`NviService.own_records`).
    """
    if not caller.user_role:
        raise Forbidden(
            "searching the referral index requires a user with a role (a professional) in the token",
            details_code="no-user-role",
        )


@dataclass(frozen=True)
class Subject:
    """A patient as this request sees it: the unblinded element and the PRS key version."""

    element: bytes = field(repr=False)
    oprf_key_version: str


OriginKeyLoader = Callable[[], Awaitable[list[dict[str, Any]]]]


def origin_keys_from_file(path: Path) -> OriginKeyLoader:
    async def load() -> list[dict[str, Any]]:
        document = json.loads(await anyio.to_thread.run_sync(path.read_text))
        return list(document.get("keys", []))

    return load


@dataclass(frozen=True)
class _Post:
    index: int
    registration: ListRegistration


@dataclass(frozen=True)
class _Delete:
    index: int
    record_id: uuid.UUID | None = None
    identifier: str | None = field(default=None, repr=False)
    categories: frozenset[str] | None = None


def _entry_where(index: int) -> str:
    return f"Bundle.entry[{index}]"


def parse_subject_param(values: Iterable[str], where: str = "subject:identifier") -> list[str]:
    """``subject:identifier`` values (``system|value``, comma-separated alternatives allowed)."""
    identifiers: list[str] = []
    for value in values:
        for token in value.split(","):
            system, sep, identifier = token.partition("|")
            if not sep or system != NVI_IDENTIFIER_SYSTEM or not identifier:
                raise BadRequest(
                    f"{where} must be '{NVI_IDENTIFIER_SYSTEM}|<NVI identifier>'",
                    code="value",
                    expression=[where],
                )
            identifiers.append(identifier)
    if not identifiers:
        raise BadRequest(f"{where} is empty", code="required", expression=[where])
    if len(identifiers) > 8:
        raise BadRequest(f"{where}: at most 8 alternatives", code="too-long", expression=[where])
    return identifiers


def parse_code_param(values: Iterable[str], where: str = "code") -> frozenset[str] | None:
    codes: set[str] = set()
    seen = False
    for value in values:
        seen = True
        for token in value.split(","):
            try:
                codes.add(parse_category_token(token))
            except UnknownCategoryError as exc:
                raise BadRequest(
                    str(exc), code="code-invalid", details_code="unknown-data-category", expression=[where]
                ) from None
    return frozenset(codes) if seen else None


class NviService:
    """Registration, search, read and delete; safe to share between requests."""

    def __init__(
        self,
        database: Database,
        keys: StorageKeyManager,
        opener: EnvelopeOpener,
        settings: NviSettings,
        origin_keys: OriginKeyLoader,
    ) -> None:
        self.database = database
        self.keys = keys
        self.opener = opener
        self.settings = settings
        self._origin_keys = origin_keys
        self._origin_loaded_at = 0.0

    # ------------------------------------------------------------------ pseudonymisation

    async def _load_origin_keys(self) -> None:
        try:
            keys = await self._origin_keys()
            self.opener.set_origin_keys(keys)
        except (OSError, ValueError, EnvelopeError, KeyError, httpx.HTTPError) as exc:
            logger.warning("cannot load the PRS origin keys: %s", exc.__class__.__name__)
            raise Unavailable("the PRS origin keys are not available; try again later") from None
        if not self.opener.checks_origin:
            raise Unavailable("the PRS publishes no origin key; cannot check where identifiers come from")
        self._origin_loaded_at = time.monotonic()

    def _subject(self, value: str, where: str, now: int) -> Subject:
        try:
            decoded = decode_nvi_identifier(value)
        except EnvelopeError as exc:
            raise BadRequest(
                f"{where}: {exc}", code="value", details_code="malformed-identifier", expression=[where]
            ) from None
        try:
            opened = self.opener.open(decoded.evaluated_output)
        except OriginError:
            raise
        except WrongRecipientError as exc:
            raise BadRequest(
                f"{where}: {exc} (made for another recipient than this NVI)",
                code="value",
                details_code="wrong-recipient",
                expression=[where],
            ) from None
        except EnvelopeError as exc:
            raise BadRequest(
                f"{where}: {exc}", code="value", details_code="invalid-envelope", expression=[where]
            ) from None
        issued_at = opened.issued_at
        assert issued_at is not None  # origin-checked envelopes always carry iat
        if issued_at > now + self.settings.clock_skew:
            raise BadRequest(f"{where}: the PRS answer is dated in the future", code="value", expression=[where])
        if now - issued_at > self.settings.max_identifier_age:
            raise BadRequest(
                f"{where}: the PRS answer is older than {self.settings.max_identifier_age} s; obtain a fresh one",
                code="value",
                details_code="identifier-expired",
                expression=[where],
            )
        element = oprf.unblind(decoded.blind_factor, opened.evaluated_element)
        return Subject(element=element, oprf_key_version=opened.oprf_key_version)

    def _subjects_sync(self, items: Sequence[tuple[str, str]]) -> dict[str, Subject]:
        now = int(time.time())
        out: dict[str, Subject] = {}
        for value, where in items:
            if value not in out:
                out[value] = self._subject(value, where, now)
        return out

    async def subjects(self, items: Sequence[tuple[str, str]]) -> dict[str, Subject]:
        """Pseudonymise ``(identifier value, where)`` pairs (each distinct value once)."""
        if not self.opener.checks_origin:
            await self._load_origin_keys()
        unique = list({value: (value, where) for value, where in reversed(items)}.values())[::-1]
        for attempt in (1, 2):
            try:
                if len(unique) >= _THREAD_THRESHOLD:
                    return await anyio.to_thread.run_sync(self._subjects_sync, unique)
                return self._subjects_sync(unique)
            except OriginError as exc:
                # The PRS may have a new origin key: fetch again (rate-limited), then decide.
                if attempt == 1 and time.monotonic() - self._origin_loaded_at > _ORIGIN_REFRESH_INTERVAL:
                    await self._load_origin_keys()
                    continue
                raise BadRequest(
                    f"{exc}", code="security", details_code="not-from-prs", expression=["subject.identifier"]
                ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    # ------------------------------------------------------------------ registration

    def _parse_entry(self, caller: Caller, index: int, entry: Any) -> _Post | _Delete:
        where = _entry_where(index)
        if not isinstance(entry, dict):
            raise BadRequest(f"{where} must be an object", code="structure", expression=[where])
        request = entry.get("request")
        if not isinstance(request, dict):
            raise BadRequest(f"{where}.request is missing", code="required", expression=[f"{where}.request"])
        method, url = request.get("method"), request.get("url")
        if not isinstance(url, str):
            raise BadRequest(f"{where}.request.url is missing", code="required", expression=[f"{where}.request.url"])
        if method == "POST":
            if url.strip("/") != "List":
                raise BadRequest(f"{where}: POST must target 'List'", code="not-supported", expression=[where])
            registration = parse_registration_list(entry.get("resource"), f"{where}.resource")
            if registration.custodian_ura != caller.organization_ura:
                raise Forbidden(
                    f"{where}: the custodian URA must be the caller's own organisation ({caller.organization_ura})",
                    details_code="custodian-mismatch",
                    expression=[f"{where}.resource.extension"],
                )
            if registration.source_client_id != caller.client_id:
                raise Forbidden(
                    f"{where}: source.identifier must name the calling client",
                    details_code="source-mismatch",
                    expression=[f"{where}.resource.source.identifier.value"],
                )
            return _Post(index, registration)
        if method == "DELETE":
            if "resource" in entry:
                raise BadRequest(f"{where}: a DELETE carries no resource", code="structure", expression=[where])
            return self._parse_delete_url(url, index)
        raise BadRequest(
            f"{where}: only POST and DELETE entries are supported (records are never updated)",
            code="not-supported",
            expression=[f"{where}.request.method"],
        )

    def _parse_delete_url(self, url: str, index: int) -> _Delete:
        where = f"{_entry_where(index)}.request.url"
        parts = urlsplit(url)
        path = parts.path.strip("/")
        if path.startswith("List/") and not parts.query:
            try:
                return _Delete(index, record_id=uuid.UUID(path.removeprefix("List/")))
            except ValueError:
                raise BadRequest(f"{where}: not a List id", code="value", expression=[where]) from None
        if path == "List" and parts.query:
            params = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False)
            unknown = {k for k, _ in params} - {"subject:identifier", "code"}
            if unknown:
                raise BadRequest(f"{where}: unsupported parameter", code="not-supported", expression=[where])
            identifiers = parse_subject_param([v for k, v in params if k == "subject:identifier"], where)
            if len(identifiers) != 1:
                raise BadRequest(f"{where}: exactly one subject:identifier", code="value", expression=[where])
            categories = parse_code_param([v for k, v in params if k == "code"], where)
            return _Delete(index, identifier=identifiers[0], categories=categories)
        raise BadRequest(
            f"{where}: DELETE must target 'List/<id>' or 'List?subject:identifier=...'",
            code="not-supported",
            expression=[where],
        )

    async def transaction(self, caller: Caller, bundle: Any) -> list[dict[str, Any]]:
        """Process a transaction Bundle atomically; returns the transaction-response entries."""
        if not isinstance(bundle, dict):
            raise BadRequest("expected a Bundle", code="structure")
        entries = bundle_entries(bundle, ("transaction",))
        if not entries:
            raise BadRequest("the Bundle has no entries", code="required", expression=["Bundle.entry"])
        if len(entries) > self.settings.max_bundle_entries:
            raise BadRequest(
                f"at most {self.settings.max_bundle_entries} entries per Bundle",
                code="too-long",
                expression=["Bundle.entry"],
            )
        parsed = [self._parse_entry(caller, i, entry) for i, entry in enumerate(entries)]
        return await self._apply(caller, parsed, len(entries))

    async def create(self, caller: Caller, resource: Any) -> tuple[dict[str, Any], bool]:
        """A single ``POST /List`` (a one-entry transaction)."""
        registration = parse_registration_list(resource, "List")
        if registration.custodian_ura != caller.organization_ura:
            raise Forbidden(
                "the custodian URA must be the caller's own organisation",
                details_code="custodian-mismatch",
                expression=["List.extension"],
            )
        if registration.source_client_id != caller.client_id:
            raise Forbidden(
                "source.identifier must name the calling client",
                details_code="source-mismatch",
                expression=["List.source.identifier.value"],
            )
        [result] = await self._apply(caller, [_Post(0, registration)], 1, where_prefix="List")
        return result, result["status"].startswith("201")

    async def _apply(
        self, caller: Caller, parsed: Sequence[_Post | _Delete], size: int, *, where_prefix: str | None = None
    ) -> list[dict[str, Any]]:
        items: list[tuple[str, str]] = []
        for item in parsed:
            if isinstance(item, _Post):
                where = where_prefix or f"{_entry_where(item.index)}.resource"
                items.append((item.registration.identifier, f"{where}.subject.identifier.value"))
            elif item.identifier is not None:
                items.append((item.identifier, f"{_entry_where(item.index)}.request.url"))
        subjects = await self.subjects(items) if items else {}
        for attempt in range(1, _REGISTRATION_RETRIES + 1):
            keys = await self.keys.current()
            try:
                return await self.database.run(self._write, caller, parsed, size, subjects, keys)
            except IntegrityError:
                # A concurrent registration of the same record won the race: run again, and
                # this time the existing row is found and answered idempotently.
                if attempt == _REGISTRATION_RETRIES:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _write(
        self,
        session: Session,
        caller: Caller,
        parsed: Sequence[_Post | _Delete],
        size: int,
        subjects: Mapping[str, Subject],
        keys: StorageKeys,
    ) -> list[dict[str, Any]]:
        custodian = caller.organization_ura
        results: list[dict[str, Any] | None] = [None] * size
        # FHIR transaction order: DELETEs before POSTs, so "delete then post" replaces.
        for item in parsed:
            if not isinstance(item, _Delete):
                continue
            if item.record_id is not None:
                record = store.get_record(session, item.record_id)
                if record is not None and record.custodian_ura != custodian:
                    raise Forbidden(
                        f"{_entry_where(item.index)}: only the custodian may delete this record",
                        details_code="not-custodian",
                        expression=[f"{_entry_where(item.index)}.request.url"],
                    )
                if record is not None:
                    store.delete_record(session, item.record_id)
                results[item.index] = {"status": "204 No Content"}
            else:
                assert item.identifier is not None
                hashes = keys.lookup_hashes(subjects[item.identifier].element)
                deleted = store.delete_for_subject(session, custodian, hashes, item.categories)
                results[item.index] = {"status": "200 OK", "outcome": deleted_outcome(deleted)}

        posts = [item for item in parsed if isinstance(item, _Post)]
        if posts:
            hashes_of = {
                value: keys.lookup_hashes(subjects[value].element)
                for value in {p.registration.identifier for p in posts}
            }
            existing = store.existing_for_custodian(
                session, custodian, [h for hashes in hashes_of.values() for h in hashes]
            )
            planned: dict[tuple[bytes, str], uuid.UUID] = {}
            rows: list[dict[str, Any]] = []
            now = datetime.now(UTC)
            sealer = self.keys.element_sealer
            for post in posts:
                registration = post.registration
                category = registration.category
                subject = subjects[registration.identifier]
                hashes = hashes_of[registration.identifier]
                found = next((existing[(h, category)] for h in hashes if (h, category) in existing), None)
                write_hash = hashes[0]  # StorageKeys.read is newest first: the write version
                if found is None:
                    found = planned.get((write_hash, category))
                if found is not None:
                    results[post.index] = {"status": "200 OK", "location": f"List/{found}"}
                    continue
                record_id = uuid.uuid4()
                planned[(write_hash, category)] = record_id
                rows.append(
                    {
                        "id": record_id,
                        "pseudonym": write_hash,
                        "storage_key_version": keys.write_version,
                        "custodian_ura": custodian,
                        "category": category,
                        "oprf_key_version": subject.oprf_key_version,
                        "source_client_id": caller.client_id,
                        "sealed_element": sealer.seal(subject.element, record_id.bytes),
                        "created_at": now,
                    }
                )
                results[post.index] = {"status": "201 Created", "location": f"List/{record_id}"}
            store.insert_records(session, rows)
        if rows_written := sum(1 for r in results if r and r["status"].startswith("201")):
            logger.info("registered %d localization record(s) for %s", rows_written, custodian)
        return [r if r is not None else {"status": "204 No Content"} for r in results]

    # ------------------------------------------------------------------ search, read, delete

    async def search(
        self, caller: Caller, identifiers: Sequence[str], categories: frozenset[str] | None
    ) -> list[store.Record]:
        """Every custodian's records for the patient behind ``identifiers`` (alternatives: one
        patient under several PRS key versions during a transition)."""
        authorize_search(caller)
        subjects = await self.subjects([(value, "subject:identifier") for value in identifiers])
        keys = await self.keys.current()
        hashes = [h for s in subjects.values() for h in keys.lookup_hashes(s.element)]
        records = await self.database.run(
            store.find_by_pseudonyms,
            hashes,
            categories=categories,
            limit=self.settings.max_search_results,
            readonly=True,
        )
        # During a PRS key transition a custodian may hold the same record under two PRS key
        # versions (re-registered, old one not yet purged): answer each fact once, the newest.
        newest: dict[tuple[str, str], store.Record] = {}
        for record in records:
            key = (record.custodian_ura, record.category)
            if key not in newest or record.created_at > newest[key].created_at:
                newest[key] = record
        return sorted(newest.values(), key=lambda r: (r.custodian_ura, r.category))

    async def own_records(
        self,
        caller: Caller,
        *,
        source_client_id: str | None,
        categories: frozenset[str] | None,
        after: uuid.UUID | None,
        limit: int,
    ) -> list[store.Record]:
        """The caller's own records (for reconciliation), in id order."""
        return await self.database.run(
            store.own_records,
            caller.organization_ura,
            source_client_id=source_client_id,
            categories=categories,
            after=after,
            limit=limit,
            readonly=True,
        )

    async def read(self, caller: Caller, record_id: uuid.UUID) -> store.Record:
        record = await self.database.run(store.get_record, record_id, readonly=True)
        if record is None:
            raise NotFound(f"List/{record_id} does not exist")
        if record.custodian_ura != caller.organization_ura:
            raise Forbidden("only the custodian may read this record", details_code="not-custodian")
        return record

    async def delete(self, caller: Caller, record_id: uuid.UUID) -> None:
        """Delete one record (idempotent for a record that no longer exists)."""
        await self._apply(caller, [_Delete(0, record_id=record_id)], 1)

    async def delete_for_subject(self, caller: Caller, identifier: str, categories: frozenset[str] | None) -> int:
        """Delete the caller's records for one patient (optionally some categories); the count."""
        subjects = await self.subjects([(identifier, "subject:identifier")])
        keys = await self.keys.current()
        hashes = keys.lookup_hashes(subjects[identifier].element)
        return await self.database.run(store.delete_for_subject, caller.organization_ura, hashes, categories)
