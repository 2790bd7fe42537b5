"""The numbered catalogue of audit event types (NEN 7513), the single source of `docs/audit-events.md`.

Codes have six digits, grouped by function in the style of the MinVWS generic-function modules
(the first two digits name the function, the next four the event): 01 authentication, 02
pseudonymisation, 03 localization, 04 consent, 05 addressing, 06 data exchange, 07
authorization, 09 the audit log itself and administration. A code, once published, never changes
meaning; retired codes stay listed. `render_markdown()` renders the catalogue and a test keeps
the document in step with this module.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

__all__ = ["CATALOGUE", "Action", "EventType", "EventTypes", "Side", "event_type", "render_markdown"]


class Action(StrEnum):
    """NEN 7513 / FHIR AuditEvent action: create, read, update, delete, execute."""

    CREATE = "C"
    READ = "R"
    UPDATE = "U"
    DELETE = "D"
    EXECUTE = "E"


class Side(StrEnum):
    """Who writes the event: the requesting party, the data holder, a national service, the citizen."""

    REQUESTER = "requester"
    HOLDER = "holder"
    NATIONAL = "national"
    ANY = "any"


PatientRule = Literal["required", "optional", "none"]


@dataclass(frozen=True, slots=True)
class EventType:
    """One catalogue entry. `patient` says whether the event must, may or must not name a patient."""

    code: str
    key: str
    title: str
    title_nl: str
    action: Action
    side: Side
    patient: PatientRule
    description: str

    def __str__(self) -> str:
        return f"{self.code} {self.key}"


class EventTypes:
    """The catalogue, as attributes: `EventTypes.FHIR_READ_HOLDER` and so on."""

    # 01 authentication and tokens (auth service)
    TOKEN_ISSUED = EventType(
        "010100",
        "token.issued",
        "Access token issued",
        "Toegangstoken uitgegeven",
        Action.EXECUTE,
        Side.NATIONAL,
        "optional",
        "The authorization server issued an access token (for a patient when the token is bound to one).",
    )
    TOKEN_REFUSED = EventType(
        "010101",
        "token.refused",
        "Token request refused",
        "Toegangstoken geweigerd",
        Action.EXECUTE,
        Side.NATIONAL,
        "optional",
        "A token request was refused (bad assertion, replay, wrong audience, unknown organisation).",
    )
    # 02 pseudonymisation
    PRS_EVALUATE = EventType(
        "020100",
        "prs.evaluate",
        "Pseudonym evaluated",
        "Pseudoniem berekend",
        Action.EXECUTE,
        Side.NATIONAL,
        "none",
        "The pseudonymisation service evaluated a blinded identifier (it never sees the BSN).",
    )
    # 03 localization (national referral index)
    NVI_REGISTER = EventType(
        "030100",
        "nvi.register",
        "Referral registered",
        "Verwijzing geregistreerd",
        Action.CREATE,
        Side.ANY,
        "optional",
        "A holder registered that it holds data of given categories about a patient.",
    )
    NVI_SEARCH = EventType(
        "030200",
        "nvi.search",
        "Referral index searched",
        "Verwijsindex geraadpleegd",
        Action.READ,
        Side.ANY,
        "optional",
        "A requester asked which holders have data about a patient.",
    )
    NVI_DELETE = EventType(
        "030300",
        "nvi.delete",
        "Referral deleted",
        "Verwijzing verwijderd",
        Action.DELETE,
        Side.ANY,
        "optional",
        "A holder withdrew a registration from the referral index.",
    )
    # 04 consent
    CONSENT_QUESTION = EventType(
        "040100",
        "consent.question",
        "Consent checked",
        "Toestemming gecontroleerd",
        Action.EXECUTE,
        Side.ANY,
        "optional",
        "The consent function answered whether data may be made available (permit / deny).",
    )
    CONSENT_CHOICE_CHANGED = EventType(
        "040200",
        "consent.choice.changed",
        "Consent choice changed",
        "Toestemmingskeuze gewijzigd",
        Action.UPDATE,
        Side.NATIONAL,
        "required",
        "A citizen, or a provider on the citizen's behalf, recorded or changed a consent choice.",
    )
    CONSENT_OPT_OUT_CHANGED = EventType(
        "040300",
        "consent.opt-out.changed",
        "Opt-out changed",
        "Bezwaar (opt-out) gewijzigd",
        Action.UPDATE,
        Side.NATIONAL,
        "required",
        "A citizen set or withdrew an objection (e.g. EHDS secondary-use opt-out).",
    )
    CONSENT_VITAL_INTEREST = EventType(
        "040400",
        "consent.vital-interest",
        "Consent overridden (vital interest)",
        "Toestemming doorbroken (spoed)",
        Action.EXECUTE,
        Side.ANY,
        "required",
        "Data were made available without consent because of a vital interest (emergency), with its justification.",
    )
    # 05 addressing
    MCSD_UPDATE = EventType(
        "050100",
        "mcsd.update",
        "Addressing data updated",
        "Adresgegevens bijgewerkt",
        Action.UPDATE,
        Side.ANY,
        "none",
        "A directory (LRZa or a local replica) accepted or refused an mCSD update.",
    )
    # 06 data exchange (communication patterns)
    FHIR_READ_HOLDER = EventType(
        "060100",
        "fhir.read.holder",
        "Patient data read (holder)",
        "Gegevens opgevraagd bij u (bron)",
        Action.READ,
        Side.HOLDER,
        "required",
        "The data holder answered (or refused) a FHIR read of patient data.",
    )
    FHIR_SEARCH_HOLDER = EventType(
        "060101",
        "fhir.search.holder",
        "Patient data searched (holder)",
        "Gegevens doorzocht bij bron",
        Action.READ,
        Side.HOLDER,
        "required",
        "The data holder answered (or refused) a FHIR search on patient data.",
    )
    FHIR_READ_REQUESTER = EventType(
        "060200",
        "fhir.read.requester",
        "Patient data requested (requester)",
        "Gegevens opgevraagd door zorgverlener",
        Action.READ,
        Side.REQUESTER,
        "required",
        "A professional's system requested a FHIR read at a holder.",
    )
    FHIR_SEARCH_REQUESTER = EventType(
        "060201",
        "fhir.search.requester",
        "Patient data search requested (requester)",
        "Gegevens gezocht door zorgverlener",
        Action.READ,
        Side.REQUESTER,
        "required",
        "A professional's system ran a FHIR search at a holder.",
    )
    NOTIFICATION_SENT = EventType(
        "060300",
        "notification.sent",
        "Referral notification sent",
        "Verwijzing verstuurd",
        Action.CREATE,
        Side.REQUESTER,
        "required",
        "A sender posted a notified-pull notification Task to a receiver.",
    )
    NOTIFICATION_RECEIVED = EventType(
        "060301",
        "notification.received",
        "Referral notification received",
        "Verwijzing ontvangen",
        Action.CREATE,
        Side.HOLDER,
        "required",
        "A receiver accepted (or refused) a notified-pull notification Task.",
    )
    REFERRAL_PULL = EventType(
        "060302",
        "referral.pull",
        "Referral data pulled",
        "Gegevens van verwijzing opgehaald",
        Action.READ,
        Side.REQUESTER,
        "required",
        "The receiver of a referral pulled the workflow Task and the listed data.",
    )
    REFERRAL_CANCELLED = EventType(
        "060303",
        "referral.cancelled",
        "Referral cancelled",
        "Verwijzing ingetrokken",
        Action.UPDATE,
        Side.ANY,
        "required",
        "A sender cancelled a referral notification.",
    )
    PUSH_SENT = EventType(
        "060400",
        "push.sent",
        "Data sent (push)",
        "Gegevens verzonden",
        Action.CREATE,
        Side.REQUESTER,
        "required",
        "A sender delivered a document or bundle to a receiver.",
    )
    PUSH_RECEIVED = EventType(
        "060401",
        "push.received",
        "Data received (push)",
        "Gegevens ontvangen",
        Action.CREATE,
        Side.HOLDER,
        "required",
        "A receiver accepted (or refused) a pushed document or bundle.",
    )
    # 07 authorization
    AUTHZ_DECISION = EventType(
        "070100",
        "authz.decision",
        "Authorization decision",
        "Autorisatiebeslissing",
        Action.EXECUTE,
        Side.ANY,
        "optional",
        "The authorization function decided on a request (permit / deny and the rules applied).",
    )
    # 09 the audit log and administration
    AUDIT_EXPORT = EventType(
        "090100",
        "audit.export",
        "Audit log exported",
        "Logging geëxporteerd",
        Action.EXECUTE,
        Side.NATIONAL,
        "none",
        "A supervisor exported audit records of a period (FHIR AuditEvent Bundle or JSON Lines).",
    )
    AUDIT_QUERY = EventType(
        "090101",
        "audit.query",
        "Audit log queried",
        "Logging doorzocht",
        Action.READ,
        Side.NATIONAL,
        "optional",
        "An organisation or supervisor queried audit records.",
    )
    AUDIT_CITIZEN_VIEW = EventType(
        "090102",
        "audit.citizen.view",
        "Citizen viewed own log",
        "Inzage in eigen logging",
        Action.READ,
        Side.NATIONAL,
        "required",
        "A citizen looked at who accessed their data (inzage).",
    )
    AUDIT_PURGE = EventType(
        "090200",
        "audit.purge",
        "Audit records purged (retention)",
        "Logging opgeschoond (bewaartermijn)",
        Action.DELETE,
        Side.NATIONAL,
        "none",
        "Records older than the retention period were removed up to a signed checkpoint, which became the anchor.",
    )
    ADMIN_ACTION = EventType(
        "099000",
        "admin.action",
        "Administrative action",
        "Beheeractie",
        Action.EXECUTE,
        Side.ANY,
        "none",
        "An operator changed configuration, topology, keys or other settings of a service.",
    )
    ADMIN_KEY_ROTATED = EventType(
        "099001",
        "admin.key-rotated",
        "Key rotated",
        "Sleutel vervangen",
        Action.UPDATE,
        Side.ANY,
        "none",
        "An operator replaced a signing or encryption key.",
    )

    @classmethod
    def all(cls) -> Iterator[EventType]:
        for value in vars(cls).values():
            if isinstance(value, EventType):
                yield value


CATALOGUE: dict[str, EventType] = {t.code: t for t in sorted(EventTypes.all(), key=lambda t: t.code)}
_BY_KEY: dict[str, EventType] = {t.key: t for t in CATALOGUE.values()}

if len(CATALOGUE) != len(_BY_KEY) or len(CATALOGUE) != len(list(EventTypes.all())):
    raise RuntimeError("audit catalogue: codes and keys must be unique")


def event_type(code_or_key: str) -> EventType:
    """Look an event type up by code (`060100`) or key (`fhir.read.holder`); KeyError when unknown."""
    found = CATALOGUE.get(code_or_key) or _BY_KEY.get(code_or_key)
    if found is None:
        raise KeyError(f"unknown audit event type {code_or_key!r}")
    return found


_GROUPS = {
    "01": "Authentication and tokens",
    "02": "Pseudonymisation",
    "03": "Localization (national referral index)",
    "04": "Consent",
    "05": "Addressing",
    "06": "Data exchange (communication patterns)",
    "07": "Authorization",
    "09": "Audit log and administration",
}


_API = (
    (
        "`POST /audit/events`",
        "audit:write",
        'append a batch `{"events": [...]}`; only sources of the caller\'s organisation',
    ),
    (
        "`GET /audit/events?organization=&user=&trace_id=&_count=&cursor=`",
        "audit:read",
        "own organisation's records; a supervisor sees every organisation and both sides of a trace",
    ),
    ("`POST /audit/events/_search`", "audit:read", "the same, with `patient` (BSN) in the JSON body"),
    (
        "`GET /audit/citizen/me?_count=&cursor=`",
        "citizen",
        "the citizen's own accesses, with names of organisations, professionals and data categories",
    ),
    (
        "`GET /audit/export?from=&to=&organization=&format=fhir\\|jsonl`",
        "audit:export",
        "FHIR R4 AuditEvent Bundle or JSON Lines; supervisors only (the audit service's operator or "
        "`LDN_AUDIT_SUPERVISOR_URAS`)",
    ),
)


def render_markdown() -> str:
    """`docs/audit-events.md`, generated from the catalogue (`ldn audit catalogue --output ...`)."""
    lines = [
        "# Audit event catalogue (NEN 7513)",
        "",
        "Generated from `ldn.audit.catalogue` by `ldn audit catalogue --output docs/audit-events.md`;",
        "a test fails when this file and the code disagree. Every service and node records these events",
        "through `ldn.audit` (see [Recording an event](#recording-an-event)). Both sides of an exchange log",
        "it (requester and holder), joined by one W3C trace id.",
        "",
        "Action: C create, R read, U update, D delete, E execute. Patient: whether the event must",
        "(`required`), may (`optional`) or must not (`none`) name a patient (by BSN, stored only as a",
        "keyed hash plus an encrypted value).",
        "",
    ]
    groups: dict[str, list[EventType]] = {}
    for item in CATALOGUE.values():
        groups.setdefault(item.code[:2], []).append(item)
    for group, items in groups.items():
        lines += [f"## {group} {_GROUPS.get(group, '')}".rstrip(), ""]
        lines += ["| code | key | event | action | logged by | patient | meaning |", "|---|---|---|---|---|---|---|"]
        for item in items:
            lines.append(
                f"| {item.code} | `{item.key}` | {item.title} ({item.title_nl}) | {item.action.value} | "
                f"{item.side.value} | {item.patient} | {item.description} |"
            )
        lines.append("")
    lines += [
        "## Recording an event",
        "",
        "```python",
        "from ldn.audit import AuditEvent, AuditObject, EventTypes, Outcome, audit_logger, user_from_caller",
        "",
        "audit = audit_logger(ctx)            # one per service; source = service name, organisation = its URA",
        "await audit.record(",
        "    AuditEvent(",
        "        type=EventTypes.FHIR_READ_HOLDER,",
        "        outcome=Outcome.SUCCESS,",
        "        users=[user_from_caller(caller)],",
        '        objects=[AuditObject.patient(bsn, data_categories=["GGC002"], query="Observation?code=...")],',
        '        checks=["token", "consent:permit", "authz:permit"],',
        "        counterpart_ura=caller.organization_ura,",
        "    )",
        ")  # raises AuditUnavailable (a 503) when the event can be neither stored nor spooled",
        "```",
        "",
        "Record before answering: when `record` raises, the access is refused. `AuditUnavailable` is a",
        "`ServiceError` (503, issue code `transient`, reason `audit-unavailable`, `Retry-After`), so a",
        "route that lets it propagate refuses correctly. Events missing mandatory fields raise",
        "`AuditEventError` where they are built (a programming error, caught by the caller's tests).",
        "",
        "## How the log keeps its promises",
        "",
        "- **One chain per log source** (service name, e.g. `node-00000020`, `nvi`): each record holds",
        "  its sequence number, the previous record's hash and its own hash, SHA-256 over the RFC 8785",
        "  canonical JSON of the record. Every `LDN_AUDIT_CHECKPOINT_EVERY` records, every",
        "  `LDN_AUDIT_CHECKPOINT_INTERVAL_SECONDS` (audit service) and on `ldn audit checkpoint`, the",
        "  head is signed with Ed25519 (`<data_dir>/audit/checkpoint-key.pem`).",
        "- **Append-only**: database triggers refuse UPDATE and DELETE on records and checkpoints; only",
        "  the retention purge may delete, through a per-source permit inside its own transaction.",
        "- **`ldn audit verify [--source S]`** streams every chain and names the first broken record and",
        "  the kind of breakage: `modified`, `deleted`, `inserted`, `reordered`, `rewritten` (the chain",
        "  was recomputed after a signed checkpoint), `bad-checkpoint`, `bad-anchor`. Exit code 1 when",
        "  anything is broken.",
        "- **Never lost**: in the embedded network a service writes to the audit tables directly; a node",
        "  or service started alone posts batches to `POST /audit/events` (scope `audit:write`). When",
        "  the store cannot be reached, events go to an encrypted, fsync'd spool",
        "  (`<data_dir>/audit-spool/<source>/`) and a background flusher delivers them later, oldest",
        "  first; appends are idempotent per event id. If even the spool fails, `record` raises.",
        "- **BSN**: stored only as an HMAC-SHA256 lookup hash, 128 bits (`LDN_AUDIT_BSN_HASH_KEY`), plus an",
        "  AES-256-GCM encrypted value (`LDN_AUDIT_BSN_ENCRYPTION_KEY`); only a supervisor's export",
        "  decrypts it.",
        "- **Retention**: `ldn audit purge` removes records older than `LDN_AUDIT_RETENTION_YEARS`",
        "  (default 5) per source up to a signed checkpoint, after verifying that part of the chain,",
        "  and stores that checkpoint as the signed anchor from which `verify` starts.",
        "",
        "## HTTP API (service `audit`, national, prefix `/audit`)",
        "",
        "| method and path | scope | what |",
        "|---|---|---|",
        *(f"| {path} | `{scope}` | {what} |" for path, scope, what in _API),
        "",
        "The command line has the same export: `ldn audit export --from --to [--org] [--format fhir|jsonl]`.",
        "",
    ]
    return "\n".join(lines)
