"""Structured JSON logging with BSN redaction, and per-request context (request id, W3C trace).

Every log line passes `redact_bsns` as its very last step, after the message, its arguments,
extra fields and any exception text have been rendered, so a BSN cannot reach the output by any
path (URL, body, exception message). The request context lives in contextvars so that
background work started inside a request keeps its trace id.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import secrets
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ldn.core.identifiers import redact_bsns

_TRACEPARENT = re.compile(r"\A00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})\Z")


@dataclass(frozen=True, slots=True)
class TraceContext:
    """W3C Trace Context (traceparent) of the current unit of work."""

    trace_id: str
    span_id: str
    flags: str = "01"

    @classmethod
    def new(cls) -> TraceContext:
        return cls(secrets.token_hex(16), secrets.token_hex(8))

    @classmethod
    def parse(cls, header: str | None) -> TraceContext | None:
        """Parse a `traceparent` header; invalid or all-zero ids give None (start a new trace)."""
        if not header:
            return None
        match = _TRACEPARENT.match(header.strip())
        if not match:
            return None
        trace_id, span_id, flags = match.groups()
        if trace_id == "0" * 32 or span_id == "0" * 16:
            return None
        return cls(trace_id, span_id, flags)

    def child(self) -> TraceContext:
        """A new span in the same trace, for an outgoing call."""
        return TraceContext(self.trace_id, secrets.token_hex(8), self.flags)

    def header(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"


request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("ldn_request_id", default=None)
trace_var: contextvars.ContextVar[TraceContext | None] = contextvars.ContextVar("ldn_trace", default=None)
service_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("ldn_service", default=None)


def current_trace() -> TraceContext | None:
    return trace_var.get()


def outgoing_traceparent() -> str:
    """The traceparent header for a call made now: a child span, or a fresh trace."""
    trace = trace_var.get()
    return (trace.child() if trace else TraceContext.new()).header()


_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, context and extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, var in (("request_id", request_id_var), ("service", service_var)):
            value = var.get()
            if value:
                entry[key] = value
        trace = trace_var.get()
        if trace:
            entry["trace_id"] = trace.trace_id
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return redact_bsns(json.dumps(entry, default=str, ensure_ascii=False))


class RedactingTextFormatter(logging.Formatter):
    """Human-readable lines for development, redacted like the JSON ones."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_bsns(super().format(record))


class RedactionFilter(logging.Filter):
    """Redacts a record in place; for handlers that use a formatter we do not control."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact_bsns(record.getMessage())
        record.args = ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_bsns(record.exc_text)
        return True


def configure_logging(level: str = "INFO", fmt: str = "json", stream: Any = None) -> None:
    """Install one redacting handler on the root logger; uvicorn's loggers propagate to it."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(
        JsonFormatter() if fmt == "json" else RedactingTextFormatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    )
    handler.addFilter(RedactionFilter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers.clear()
        lg.propagate = True
    # httpx logs every request URL at INFO; URLs can carry identifiers, so keep it quiet.
    # Alembic narrates each plugin it loads; only its warnings matter to an operator.
    for noisy in ("httpx", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
