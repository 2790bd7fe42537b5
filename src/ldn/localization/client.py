"""The node-side localization client: BSN -> PRS -> NVI, for registration, search and deletion.

    client = LocalizationClient(http, prs_url=..., nvi_url=..., auth=auth, custodian_ura="00000020")
    await client.register("999990019", {"Condition", "MedicationUse"})
    records = await client.search("999990019", {"Imaging"})     # needs a user (professional) token
    await client.delete("999990019")                            # this organisation's records only

Every call builds fresh NVI identifiers: derive the OPRF input from the BSN (JCS + HKDF), blind
it, have the PRS evaluate it (`/evaluate`, or `/evaluate/batch` for many patients), and hand the
NVI ``(evaluated_output, blind_factor)``; nothing is kept afterwards (IG: single use). The BSN
never leaves this process and never reaches a log.

``auth(method, url, scope)`` returns the request headers (Authorization, and DPoP when the token
is DPoP-bound); `token_auth` adapts an `ldn.auth.client.TokenClient`.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx

from ldn.core.errors import ServiceError
from ldn.core.fhir import raise_for_outcome
from ldn.core.identifiers import BSN
from ldn.localization import derivation, oprf
from ldn.localization.categories import DATA_CATEGORIES, DATA_CATEGORY_SYSTEM
from ldn.localization.envelope import b64url_encode, encode_nvi_identifier
from ldn.localization.nvi.records import NVI_IDENTIFIER_SYSTEM, OAUTH_CLIENT_SYSTEM, registration_list

AuthHeaders = Callable[[str, str, str], Awaitable[Mapping[str, str]]]

DEFAULT_RECIPIENT_ORGANIZATION = "ura:90000901"
DEFAULT_RECIPIENT_SCOPE = "nationale-verwijsindex"
# How long a client trusts the PRS's list of active key versions (a transition lasts days).
VERSIONS_CACHE_SECONDS = 60.0
FHIR_JSON = "application/fhir+json"


class LocalizationError(ServiceError):
    """A PRS or NVI call failed; carries the remote status and OperationOutcome diagnostics."""


@dataclass(frozen=True)
class LocalizationRecord:
    """One search hit: organisation X holds data of category C (never the pseudonym)."""

    id: str
    custodian_ura: str
    category: str
    source_client_id: str


@dataclass(frozen=True)
class RegistrationSummary:
    """What a registration Bundle did: records created, already present, deleted."""

    created: int = 0
    existing: int = 0
    deleted: int = 0

    def __add__(self, other: RegistrationSummary) -> RegistrationSummary:
        return RegistrationSummary(
            self.created + other.created, self.existing + other.existing, self.deleted + other.deleted
        )


def token_auth(tokens: Any, token_endpoint: str) -> AuthHeaders:
    """Adapt an `ldn.auth.client.TokenClient` (cached tokens per scope) to `AuthHeaders`."""

    async def headers(method: str, url: str, scope: str) -> Mapping[str, str]:
        token = await tokens.token(token_endpoint, scope)
        result: Mapping[str, str] = token.headers(method, url)
        return result

    return headers


def _check_categories(categories: Iterable[str]) -> list[str]:
    chosen = sorted(set(categories))
    unknown = [c for c in chosen if c not in DATA_CATEGORIES]
    if unknown:
        raise ValueError(f"unknown data category {unknown[0][:64]!r}")
    return chosen


def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "error" in body and "resourceType" not in body:
        raise LocalizationError(
            f"{body.get('error')}: {body.get('error_description', '')}", status=response.status_code, code="security"
        )
    try:
        raise_for_outcome(response.status_code, body)
    except ServiceError as exc:
        raise LocalizationError(exc.diagnostics, status=exc.status, code=exc.code) from None


class LocalizationClient:
    """Talks to the PRS and the NVI on behalf of one care organisation (the custodian)."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        prs_url: str,
        nvi_url: str,
        auth: AuthHeaders,
        custodian_ura: str,
        client_id: str | None = None,
        recipient_organization: str = DEFAULT_RECIPIENT_ORGANIZATION,
        recipient_scope: str = DEFAULT_RECIPIENT_SCOPE,
        prs_batch_size: int = 500,
        bundle_size: int = 1000,
    ) -> None:
        self.http = http
        self.prs_url = prs_url.rstrip("/")
        self.nvi_url = nvi_url.rstrip("/")
        self.auth = auth
        self.custodian_ura = custodian_ura
        # The national authorization server issues client_id = the organisation's URA.
        self.client_id = client_id or custodian_ura
        self.recipient_organization = recipient_organization
        self.recipient_scope = recipient_scope
        self.prs_batch_size = prs_batch_size
        self.bundle_size = bundle_size
        self._versions: tuple[float, list[str]] = (0.0, [])

    def __repr__(self) -> str:
        return f"LocalizationClient(custodian={self.custodian_ura}, nvi={self.nvi_url})"

    # ------------------------------------------------------------------ PRS

    async def _post_json(self, url: str, scope: str, body: Any, content_type: str = "application/json") -> Any:
        headers = dict(await self.auth("POST", url, scope))
        headers["Content-Type"] = content_type
        response = await self.http.post(url, content=_dumps(body), headers=headers)
        _raise_for(response)
        return response.json()

    def _blind(self, bsn: str) -> oprf.BlindedInput:
        BSN.parse(bsn)  # refuse early, with an error that does not repeat the number
        private_input = derivation.derive_oprf_input(bsn, self.recipient_organization, self.recipient_scope)
        return oprf.blind(private_input)

    async def identifiers(self, bsns: Sequence[str], *, oprf_key_version: str | None = None) -> list[str]:
        """Fresh NVI identifier values for these BSNs, in order (batched PRS evaluations)."""
        out: list[str] = []
        for start in range(0, len(bsns), self.prs_batch_size):
            chunk = bsns[start : start + self.prs_batch_size]
            blinded = [self._blind(bsn) for bsn in chunk]
            body: dict[str, Any] = {
                "recipient_organization": self.recipient_organization,
                "recipient_scope": self.recipient_scope,
            }
            if oprf_key_version is not None:
                body["oprf_key_version"] = oprf_key_version
            if len(blinded) == 1:
                body["blinded_input"] = b64url_encode(blinded[0].blinded_element)
                answer = await self._post_json(f"{self.prs_url}/evaluate", "prs:read", body)
                outputs = [answer["evaluated_output"]]
            else:
                body["blinded_inputs"] = [b64url_encode(b.blinded_element) for b in blinded]
                answer = await self._post_json(f"{self.prs_url}/evaluate/batch", "prs:read", body)
                outputs = list(answer["evaluated_outputs"])
            if len(outputs) != len(blinded):
                raise LocalizationError("the PRS answered a different number of outputs", status=502)
            out.extend(encode_nvi_identifier(o, b.blind) for o, b in zip(outputs, blinded, strict=True))
        return out

    async def identifier(self, bsn: str, *, oprf_key_version: str | None = None) -> str:
        [value] = await self.identifiers([bsn], oprf_key_version=oprf_key_version)
        return value

    async def active_key_versions(self) -> list[str]:
        """The PRS key versions still active for the NVI (more than one during a transition)."""
        url = f"{self.prs_url}/recipients/{self.recipient_organization}/{self.recipient_scope}"
        response = await self.http.get(url, headers=dict(await self.auth("GET", url, "prs:read")))
        _raise_for(response)
        versions = list(response.json()["active_key_versions"])
        self._versions = (time.monotonic() + VERSIONS_CACHE_SECONDS, versions)
        return versions

    async def _search_versions(self) -> list[str]:
        expires, versions = self._versions
        if expires > time.monotonic():
            return versions
        return await self.active_key_versions()

    # ------------------------------------------------------------------ NVI

    def _list(self, category: str, identifier: str) -> dict[str, Any]:
        return registration_list(self.custodian_ura, category, identifier, self.client_id)

    async def _transaction(self, entries: list[dict[str, Any]]) -> RegistrationSummary:
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
        # POST [base]/: the embedded network redirects a bare [base] to it (307).
        answer = await self._post_json(f"{self.nvi_url}/", "nvi:write", bundle, FHIR_JSON)
        created = existing = deleted = 0
        for sent, entry in zip(entries, answer.get("entry", []), strict=False):
            response = entry.get("response", {})
            status = str(response.get("status", ""))
            if sent["request"]["method"] == "DELETE":
                deleted += _deleted_count(response)
            elif status.startswith("201"):
                created += 1
            elif status.startswith("200"):
                existing += 1
        return RegistrationSummary(created, existing, deleted)

    async def register(self, bsn: str, categories: Iterable[str]) -> RegistrationSummary:
        """Register that this organisation holds ``categories`` for the patient (idempotent)."""
        return await self.register_many([(bsn, categories)])

    async def register_many(self, holdings: Iterable[tuple[str, Iterable[str]]]) -> RegistrationSummary:
        """Bulk registration: batched PRS evaluations, Bundles of up to `bundle_size` entries."""
        summary = RegistrationSummary()
        pending: list[tuple[str, list[str]]] = []
        pending_entries = 0
        for bsn, categories in holdings:
            chosen = _check_categories(categories)
            if not chosen:
                continue
            pending.append((bsn, chosen))
            pending_entries += len(chosen)
            if pending_entries >= self.bundle_size:
                summary += await self._register_chunk(pending)
                pending, pending_entries = [], 0
        if pending:
            summary += await self._register_chunk(pending)
        return summary

    async def _register_chunk(self, chunk: list[tuple[str, list[str]]]) -> RegistrationSummary:
        identifiers = await self.identifiers([bsn for bsn, _ in chunk])
        entries = [
            {"request": {"method": "POST", "url": "List"}, "resource": self._list(category, identifier)}
            for (_, categories), identifier in zip(chunk, identifiers, strict=True)
            for category in categories
        ]
        return await self._transaction(entries)

    async def replace(self, bsn: str, categories: Iterable[str]) -> RegistrationSummary:
        """Make this organisation's records for the patient exactly ``categories``, atomically:
        one Bundle that deletes its current records for the patient and posts the new set."""
        chosen = _check_categories(categories)
        identifier = await self.identifier(bsn)
        entries: list[dict[str, Any]] = [{"request": {"method": "DELETE", "url": _subject_query(identifier)}}]
        entries += [
            {"request": {"method": "POST", "url": "List"}, "resource": self._list(c, identifier)} for c in chosen
        ]
        return await self._transaction(entries)

    async def delete(self, bsn: str, categories: Iterable[str] | None = None) -> int:
        """Delete this organisation's records for the patient (some categories, or all).

        Sent as a transaction Bundle with a conditional DELETE entry, so the NVI identifier
        travels in the body and never in a URL (URLs end up in logs and proxies)."""
        identifier = await self.identifier(bsn)
        chosen = None if categories is None else _check_categories(categories)
        url = f"List?{_subject_params(identifier, chosen)}"
        summary = await self._transaction([{"request": {"method": "DELETE", "url": url}}])
        return summary.deleted

    async def search(
        self, bsn: str, categories: Iterable[str] | None = None, *, all_key_versions: bool = True
    ) -> list[LocalizationRecord]:
        """Which organisations hold data of (some of) ``categories`` for the patient.

        With ``all_key_versions`` the client asks the PRS for an identifier under every active
        key version and sends them as alternatives, so records registered before a PRS key
        rotation are still found during the transition.
        """
        versions: list[str | None] = [None]
        if all_key_versions:
            active = await self._search_versions()
            if len(active) > 1:
                versions = list(active)
        identifiers = [await self.identifier(bsn, oprf_key_version=v) for v in versions]
        query = _subject_params(
            ",".join(identifiers), None if categories is None else _check_categories(categories), joined=True
        )
        # FHIR search by POST: the identifiers stay out of the URL.
        url = f"{self.nvi_url}/List/_search"
        headers = dict(await self.auth("POST", url, "nvi:read"))
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        response = await self.http.post(url, content=query.encode("ascii"), headers=headers)
        _raise_for(response)
        return [_record(entry["resource"]) for entry in response.json().get("entry", [])]


def _dumps(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode("utf-8")


def _subject_params(identifier: str, categories: Sequence[str] | None, *, joined: bool = False) -> str:
    if joined:
        value = ",".join(f"{NVI_IDENTIFIER_SYSTEM}|{i}" for i in identifier.split(","))
    else:
        value = f"{NVI_IDENTIFIER_SYSTEM}|{identifier}"
    params = [("subject:identifier", value)]
    if categories:
        params.append(("code", ",".join(f"{DATA_CATEGORY_SYSTEM}|{c}" for c in categories)))
    return urlencode(params)


def _deleted_count(response: Mapping[str, Any]) -> int:
    """Records removed by one DELETE entry: 1 for a by-id delete, the NVI's count for a query."""
    if str(response.get("status", "")).startswith("204"):
        return 1
    issues = (response.get("outcome") or {}).get("issue") or [{}]
    match = re.match(r"deleted (\d+) record", str(issues[0].get("diagnostics", "")))
    return int(match.group(1)) if match else 0


def _subject_query(identifier: str) -> str:
    return f"List?{_subject_params(identifier, None)}"


def _record(resource: Mapping[str, Any]) -> LocalizationRecord:
    custodian = resource["extension"][0]["valueReference"]["identifier"]["value"]
    category = resource["code"]["coding"][0]["code"]
    source = resource.get("source", {}).get("identifier", {})
    client = source.get("value", "") if source.get("system") == OAUTH_CLIENT_SYSTEM else ""
    return LocalizationRecord(id=resource["id"], custodian_ura=custodian, category=category, source_client_id=client)
