"""The one place where failures become HTTP answers.

Services raise `ServiceError` (or a subclass) from their service layer; `install_error_handlers`
turns every exception into a protocol-correct body: a FHIR OperationOutcome for FHIR and JSON
services, an OAuth 2.0 error object (RFC 6749 §5.2, RFC 6750 §3) for `OAuthError`. Unexpected
exceptions become a 500 OperationOutcome that names the request id and nothing else: no stack
trace, no key material, no BSN.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from ldn.core.identifiers import IdentifierError, redact_bsns

logger = logging.getLogger("ldn.errors")

FHIR_JSON = "application/fhir+json"

# Canonical base for ldn's own FHIR artefacts (code systems, extensions, naming systems).
LDN_CANONICAL = "https://ldn.example.org/fhir"


class ServiceError(Exception):
    """A failure with a meaning for the caller: HTTP status plus FHIR issue type code.

    `code` is a value from the FHIR IssueType value set (invalid, structure, required, value,
    not-found, forbidden, conflict, too-long, not-supported, throttled, timeout, transient,
    processing, login, security, exception). `details_code` is an optional ldn reason code
    (for example `consent-not-permit`) carried in `issue.details.coding`.
    """

    status: int = 400
    code: str = "invalid"

    def __init__(
        self,
        diagnostics: str,
        *,
        status: int | None = None,
        code: str | None = None,
        details_code: str | None = None,
        expression: list[str] | None = None,
        headers: dict[str, str] | None = None,
        severity: str = "error",
    ) -> None:
        super().__init__(diagnostics)
        self.diagnostics = diagnostics
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        self.details_code = details_code
        self.expression = expression
        self.headers = headers or {}
        self.severity = severity


class BadRequest(ServiceError):
    status, code = 400, "invalid"


class NotAuthenticated(ServiceError):
    status, code = 401, "login"


class Forbidden(ServiceError):
    status, code = 403, "forbidden"


class NotFound(ServiceError):
    status, code = 404, "not-found"


class Gone(ServiceError):
    status, code = 410, "deleted"


class Conflict(ServiceError):
    status, code = 409, "conflict"


class PreconditionFailed(ServiceError):
    status, code = 412, "conflict"


class PayloadTooLarge(ServiceError):
    status, code = 413, "too-long"


class UnsupportedMediaType(ServiceError):
    status, code = 415, "not-supported"


class Unprocessable(ServiceError):
    status, code = 422, "processing"


class TooManyRequests(ServiceError):
    status, code = 429, "throttled"


class Unavailable(ServiceError):
    status, code = 503, "transient"


class UpstreamTimeout(ServiceError):
    status, code = 504, "timeout"


class OAuthError(Exception):
    """An OAuth 2.0 error: rendered as `{"error", "error_description"}`.

    Token-endpoint errors (RFC 6749 §5.2) are 400 except `invalid_client` (401). Resource-server
    errors (RFC 6750 §3: `invalid_token` 401, `insufficient_scope` 403) also set
    `WWW-Authenticate`; `scheme` is `Bearer` or `DPoP` (RFC 9449 §7.1).
    """

    _DEFAULT_STATUS = {
        "invalid_client": 401,
        "invalid_token": 401,
        "insufficient_scope": 403,
        "access_denied": 403,
        "use_dpop_nonce": 401,
    }

    def __init__(
        self,
        error: str,
        description: str,
        *,
        status: int | None = None,
        scheme: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status or self._DEFAULT_STATUS.get(error, 400)
        self.scheme = scheme
        self.headers = dict(headers or {})

    def response_headers(self) -> dict[str, str]:
        headers = dict(self.headers)
        if self.scheme:
            desc = self.description.replace('"', "'")
            headers["WWW-Authenticate"] = f'{self.scheme} error="{self.error}", error_description="{desc}"'
        headers.setdefault("Cache-Control", "no-store")
        return headers


def operation_outcome(
    code: str,
    diagnostics: str,
    *,
    severity: str = "error",
    details_code: str | None = None,
    expression: list[str] | None = None,
) -> dict[str, Any]:
    """A FHIR R4 OperationOutcome with one issue."""
    issue: dict[str, Any] = {"severity": severity, "code": code, "diagnostics": redact_bsns(diagnostics)}
    if details_code:
        issue["details"] = {
            "coding": [{"system": f"{LDN_CANONICAL}/CodeSystem/reason", "code": details_code}],
            "text": details_code,
        }
    if expression:
        issue["expression"] = expression
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def outcome_response(
    status: int,
    code: str,
    diagnostics: str,
    *,
    details_code: str | None = None,
    expression: list[str] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = operation_outcome(code, diagnostics, details_code=details_code, expression=expression)
    return JSONResponse(body, status_code=status, media_type=FHIR_JSON, headers=headers)


def oauth_response(exc: OAuthError) -> JSONResponse:
    body = {"error": exc.error, "error_description": redact_bsns(exc.description)}
    return JSONResponse(body, status_code=exc.status, headers=exc.response_headers())


_STATUS_CODES = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    409: "conflict",
    410: "deleted",
    412: "conflict",
    413: "too-long",
    415: "not-supported",
    422: "processing",
    429: "throttled",
    503: "transient",
    504: "timeout",
}


def _validation_diagnostics(errors: list[Any]) -> tuple[str, list[str]]:
    parts: list[str] = []
    expressions: list[str] = []
    for err in errors[:10]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body",))
        parts.append(f"{loc or 'request'}: {err.get('msg', 'invalid')}")
        if loc:
            expressions.append(loc)
    return "; ".join(parts) or "invalid request", expressions


def error_response(request: Request | None, exc: BaseException) -> Response:
    """Map any exception to its response; the single mapping used by every service."""
    if isinstance(exc, OAuthError):
        return oauth_response(exc)
    if isinstance(exc, ServiceError):
        return outcome_response(
            exc.status,
            exc.code,
            exc.diagnostics,
            details_code=exc.details_code,
            expression=exc.expression,
            headers=exc.headers,
        )
    if isinstance(exc, IdentifierError):
        return outcome_response(400, "value", str(exc))
    if _is_statement_timeout(exc):
        return outcome_response(
            503, "timeout", "the database stopped the query: it ran longer than allowed", headers={"Retry-After": "5"}
        )
    if isinstance(exc, RequestValidationError | ValidationError):
        diagnostics, expressions = _validation_diagnostics(list(exc.errors()))
        return outcome_response(400, "structure", diagnostics, expression=expressions or None)
    if isinstance(exc, StarletteHTTPException):
        code = _STATUS_CODES.get(exc.status_code, "processing" if exc.status_code < 500 else "exception")
        detail = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 404 and detail == "Not Found":
            path = request.url.path if request is not None else ""
            detail = f"no such resource or operation: {path}"
        elif exc.status_code == 405:
            detail = f"method {request.method if request else ''} not allowed here".replace("  ", " ")
        return outcome_response(exc.status_code, code, detail, headers=dict(exc.headers or {}))
    request_id = ""
    if request is not None:
        request_id = str(getattr(request.state, "request_id", "") or "")
    # The traceback goes to our (redacting) log, never to the caller.
    logger.error("unhandled error", exc_info=(type(exc), exc, exc.__traceback__))
    return outcome_response(500, "exception", f"internal error; quote request id {request_id or 'unknown'}")


def _is_statement_timeout(exc: BaseException) -> bool:
    """PostgreSQL's `statement_timeout` (SQLSTATE 57014) arriving through SQLAlchemy."""
    return getattr(getattr(exc, "orig", None), "sqlstate", None) == "57014"


def install_error_handlers(app: FastAPI) -> None:
    """Register the mapping for every exception type on a FastAPI app."""

    async def handle(request: Request, exc: Exception) -> Response:
        return error_response(request, exc)

    for exc_type in (
        OAuthError,
        ServiceError,
        IdentifierError,
        RequestValidationError,
        ValidationError,
        StarletteHTTPException,
        Exception,
    ):
        app.add_exception_handler(exc_type, handle)
