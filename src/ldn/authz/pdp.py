"""Policy decision point: evaluates ``data.ldn.authz.decision`` over the Rego policies with regopy.

Loading: every non-test ``*.rego`` in the policy directory and every ``data/*.json`` (mounted at
``data.ldn.tables.<file stem>``, see :func:`ldn.authz.rego_tests.load_tables`) is compiled once
into a rego-cpp bundle. Measured with regopy 1.5.2 on this policy set: ``Interpreter.query()``
recompiles all modules on every call (~80-100 ms a decision) while querying a compiled bundle
entrypoint costs ~3-8 ms, so decisions always run against the bundle.

Threads: an Interpreter holds the input as mutable state and regopy's ctypes calls release the
GIL, so two threads sharing one interpreter get each other's answers (seen in a scratch run).
Each thread therefore has its own small run-interpreter; the compiled bundle is shared read-only
(checked: 8 threads x 160 decisions, identical results, about twice the sequential throughput).

Failure: anything unexpected (load error, evaluation error, malformed output) is a deny with
reason ``pdp-error``; nothing raises to the caller and nothing fails open. Invalid input is a deny
with ``missing-input:<path>`` / ``invalid-input:<path>`` before any policy runs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from regopy import Bundle, Input, Interpreter

from ldn.authz.model import VOLATILE_CONTEXT_FIELDS, AuthzInput, Decision, Explanation, validation_reasons
from ldn.authz.rego_tests import DATA_MOUNT, load_tables
from ldn.core.identifiers import redact_bsns

__all__ = [
    "DATA_MOUNT",
    "TIME_DEPENDENT_CONTEXT_FIELDS",
    "DecisionCache",
    "PolicyDecisionPoint",
    "PolicyLoadError",
    "PreparedInput",
    "cache_key",
    "ceil_to_second",
]

log = logging.getLogger(__name__)

DECISION_ENTRYPOINT = "ldn/authz/decision"
TREE_ENTRYPOINT = "ldn/authz"
RELEASE_ENTRYPOINT = "ldn/authz/release"
_PACKAGE = re.compile(r"^package\s+([A-Za-z_][\w.]*)", re.MULTILINE)
PDP_ERROR = "pdp-error"


class PolicyLoadError(RuntimeError):
    """The policy directory could not be compiled."""


@dataclass(frozen=True, slots=True)
class PreparedInput:
    """A validated input and the exact JSON document the policies will see."""

    model: AuthzInput
    document: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Compiled:
    bundle: Bundle
    release: str
    packages: tuple[str, ...]


def ceil_to_second(moment: datetime) -> datetime:
    """Round up to a whole second.

    Time enters decisions only through comparisons like ``now < restriction_end``; rounding up
    makes a decision a function of whole seconds (so it can be cached per second) and errs
    towards deny, never towards allowing past an end time.
    """
    if moment.microsecond:
        moment = moment.replace(microsecond=0) + timedelta(seconds=1)
    return moment


def _utcnow() -> datetime:
    return datetime.now(UTC)


class PolicyDecisionPoint:
    """Evaluates authorization inputs against the policies in ``policy_dir``.

    ``strict=True`` raises :class:`PolicyLoadError` when the policies do not compile (for service
    start-up); by default a broken policy set yields a PDP that denies everything with
    ``pdp-error``.
    """

    def __init__(
        self,
        policy_dir: Path,
        *,
        strict: bool = False,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.policy_dir = Path(policy_dir)
        self._clock = clock
        self._local = threading.local()
        # Swapped whole on reload; in-flight decisions keep the bundle they started with.
        self._compiled: _Compiled | None = None
        self.load_error: str | None = None
        try:
            self._compiled = self._compile()
        except Exception as exc:
            self.load_error = _describe(exc)
            log.error("authz policies in %s failed to load: %s", self.policy_dir, self.load_error)
            if strict:
                raise PolicyLoadError(self.load_error) from exc

    # --- loading ------------------------------------------------------------------------------

    @property
    def policy_release(self) -> str:
        """The agreement-system release the loaded policies implement ("" when none loaded)."""
        compiled = self._compiled
        return compiled.release if compiled else ""

    def reload(self) -> bool:
        """Recompile the policy directory.

        On failure the previously loaded policies stay active (as OPA does with a bad bundle) and
        ``load_error`` says why; returns whether the new policies are active.
        """
        try:
            compiled = self._compile()
        except Exception as exc:  # noqa: BLE001 - a bad reload keeps the previous policies
            self.load_error = _describe(exc)
            log.error("authz policy reload from %s failed, keeping previous: %s", self.policy_dir, self.load_error)
            return False
        self._compiled = compiled
        self.load_error = None
        return True

    def _compile(self) -> _Compiled:
        modules = sorted(p for p in self.policy_dir.glob("*.rego") if not p.name.endswith("_test.rego"))
        if not modules:
            raise PolicyLoadError(f"no policies in {self.policy_dir}")
        builder = Interpreter()
        packages: set[str] = set()
        for path in modules:
            source = path.read_text(encoding="utf-8")
            packages.update(_PACKAGE.findall(source))
            builder.add_module(path.name, source)
        builder.add_data(load_tables(self.policy_dir))
        bundle = builder.build(None, [DECISION_ENTRYPOINT, TREE_ENTRYPOINT, RELEASE_ENTRYPOINT])
        if not bundle.ok():
            raise PolicyLoadError("bundle build failed")
        release = _expression(Interpreter().query_bundle_entrypoint(bundle, RELEASE_ENTRYPOINT))
        if not isinstance(release, str) or not release:
            raise PolicyLoadError("data.ldn.authz.release is not a non-empty string")
        return _Compiled(bundle=bundle, release=release, packages=tuple(sorted(packages)))

    # --- evaluation ---------------------------------------------------------------------------

    def prepare(self, raw: AuthzInput | Mapping[str, Any]) -> PreparedInput | Decision:
        """Validate and normalise an input; a deny Decision when it is not acceptable.

        ``context.now`` is filled with the current time when absent and rounded up to the
        second (see :func:`ceil_to_second`).
        """
        release = self.policy_release
        try:
            model = raw if isinstance(raw, AuthzInput) else AuthzInput.model_validate(raw)
            now = ceil_to_second(model.context.now or self._clock())
            model = model.model_copy(update={"context": model.context.model_copy(update={"now": now})})
            return PreparedInput(model=model, document=model.to_policy_input())
        except ValidationError as exc:
            return Decision.deny(validation_reasons(exc), release)
        except Exception as exc:  # noqa: BLE001 - fail closed
            log.error("authz input preparation failed: %s", _describe(exc))
            return Decision.deny([PDP_ERROR], release)

    def decide(self, raw: AuthzInput | Mapping[str, Any]) -> Decision:
        """Decide on one input. Never raises; never allows on error."""
        prepared = self.prepare(raw)
        if isinstance(prepared, Decision):
            return prepared
        return self.evaluate(prepared)

    def evaluate(self, prepared: PreparedInput) -> Decision:
        """Evaluate an already prepared input."""
        compiled = self._compiled
        if compiled is None:
            return Decision.deny([PDP_ERROR], "")
        try:
            result = self._query(compiled, prepared.document, DECISION_ENTRYPOINT)
            return _to_decision(result, compiled.release)
        except Exception as exc:  # noqa: BLE001 - fail closed: any error is a deny
            log.error("authz evaluation failed: %s", _describe(exc))
            return Decision.deny([PDP_ERROR], compiled.release)

    def explain(self, raw: AuthzInput | Mapping[str, Any]) -> Explanation:
        """The decision plus every policy rule that evaluated to true (dotted paths).

        Evaluates the whole ``data.ldn.authz`` tree (~30 ms): for debugging and reports, not for
        the request path.
        """
        prepared = self.prepare(raw)
        if isinstance(prepared, Decision):
            return Explanation(decision=prepared, true_rules=[])
        decision = self.evaluate(prepared)
        compiled = self._compiled
        if compiled is None or decision.has_reason(PDP_ERROR):
            return Explanation(decision=decision, true_rules=[])
        try:
            tree = self._query(compiled, prepared.document, TREE_ENTRYPOINT)
            true_rules = _true_rules(tree, compiled.packages)
        except Exception as exc:  # noqa: BLE001 - fail closed
            log.error("authz explain failed: %s", _describe(exc))
            return Explanation(decision=Decision.deny([PDP_ERROR], compiled.release), true_rules=[])
        return Explanation(decision=decision, true_rules=true_rules)

    def _query(self, compiled: _Compiled, document: dict[str, Any], entrypoint: str) -> Any:
        interpreter = self._interpreter()
        interpreter.set_input(Input(document))
        return _expression(interpreter.query_bundle_entrypoint(compiled.bundle, entrypoint))

    def _interpreter(self) -> Interpreter:
        # One run-interpreter per thread: they hold the input, the bundle is shared.
        interpreter: Interpreter | None = getattr(self._local, "interpreter", None)
        if interpreter is None:
            interpreter = Interpreter()
            self._local.interpreter = interpreter
        return interpreter


def _expression(output: Any) -> Any:
    """The single value of a query, or an error when the output is an error or undefined."""
    if not output.ok():
        raise RuntimeError(f"rego evaluation error: {output}")
    results = output.results
    if len(results) != 1 or len(results[0].expressions) != 1:
        raise RuntimeError("rego query result undefined or ambiguous")
    return results[0].expressions[0]


def _str_list(value: Any, field: str) -> list[str]:
    # Rego sets arrive as JSON arrays; sorted here because rego-cpp keeps insertion order.
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"decision.{field} is not a list of strings")
    return sorted(set(value))


def _to_decision(result: Any, release: str) -> Decision:
    """Check the policy output's shape strictly: anything but a literal ``true`` is a deny."""
    if not isinstance(result, dict):
        raise TypeError("decision is not an object")
    allow = result.get("allow")
    if not isinstance(allow, bool):
        raise TypeError("decision.allow is not a boolean")
    policy = result.get("policy")
    if not isinstance(policy, str):
        raise TypeError("decision.policy is not a string")
    if result.get("release") != release:
        raise ValueError("decision.release differs from the loaded release")
    return Decision(
        allow=allow is True,
        reasons=_str_list(result.get("reasons"), "reasons"),
        allowed_categories=_str_list(result.get("allowed_categories"), "allowed_categories"),
        allowed_queries=_str_list(result.get("allowed_queries"), "allowed_queries"),
        flags=_str_list(result.get("flags"), "flags"),
        policy_release=release,
        rules_matched=_str_list(result.get("rules_matched"), "rules_matched"),
        policy=policy or None,
        agreements=_str_list(result.get("agreements"), "agreements"),
    )


def _true_rules(tree: Any, packages: tuple[str, ...]) -> list[str]:
    # Walk packages, not values: object-valued rules (tables, `out`, the decision object)
    # would otherwise repeat rules under other names.
    found: list[str] = []
    root = TREE_ENTRYPOINT.replace("/", ".")
    for package in packages:
        if package != root and not package.startswith(root + "."):
            continue
        node = tree
        for part in package[len(root) :].split(".")[1:]:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            found.extend(f"data.{package}.{rule}" for rule, value in node.items() if value is True)
    return sorted(found)


def _describe(exc: BaseException) -> str:
    # Rego error text can quote input; cap it and mask anything BSN-shaped before logging.
    return redact_bsns(f"{type(exc).__name__}: {exc}")[:2000]


# --- decision cache ----------------------------------------------------------------------------

# Context fields whose presence makes a decision depend on context.now. Only notified_pull reads
# the time (now < referral.restriction_end) and it applies exactly when a referral is present.
# A policy that starts reading `now` elsewhere must add its trigger field here.
TIME_DEPENDENT_CONTEXT_FIELDS: frozenset[str] = frozenset({"referral"})


def cache_key(prepared: PreparedInput) -> str:
    """SHA-256 over a canonical JSON form of exactly what the decision depends on.

    Canonical: keys sorted, no white space, ASCII with escapes. The document holds only strings, booleans,
    lists and objects (no numbers), so this is as unambiguous as RFC 8785 (JCS) for a cache key
    and about four times cheaper in pure Python (the cached path is dominated by it).

    That is the whole normalised policy input minus request identifiers (request_id,
    traceparent) and minus ``now`` unless a time-dependent field is present; then ``now`` stays,
    already rounded up to the second by :meth:`PolicyDecisionPoint.prepare`, so a time-dependent
    entry is only ever reused within the same second, with the very time it was decided for.
    """
    document = dict(prepared.document)
    context = {k: v for k, v in document["context"].items() if k not in VOLATILE_CONTEXT_FIELDS}
    if not TIME_DEPENDENT_CONTEXT_FIELDS & context.keys():
        context.pop("now", None)
    document["context"] = context
    # ensure_ascii: a lone surrogate in some string is escaped instead of failing to encode.
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


class DecisionCache:
    """Bounded LRU cache with TTL in front of a :class:`PolicyDecisionPoint`.

    Entries belong to one policy release: when ``pdp.policy_release`` differs from the release
    the entries were made under (checked on every lookup), the cache empties itself. Only
    policy-evaluated decisions are stored; invalid-input and pdp-error denies are not.
    """

    def __init__(
        self,
        pdp: PolicyDecisionPoint,
        *,
        maxsize: int = 10_000,
        ttl_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if maxsize < 1 or ttl_seconds <= 0:
            raise ValueError("maxsize and ttl_seconds must be positive")
        self.pdp = pdp
        self.maxsize = maxsize
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[float, Decision]] = OrderedDict()
        self._release = pdp.policy_release
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def decide(self, raw: AuthzInput | Mapping[str, Any]) -> Decision:
        """Like :meth:`PolicyDecisionPoint.decide`, answered from the cache when possible."""
        prepared = self.pdp.prepare(raw)
        if isinstance(prepared, Decision):
            return prepared
        key = cache_key(prepared)
        release = self.pdp.policy_release
        now = self._clock()
        with self._lock:
            if release != self._release:
                self._entries.clear()
                self._release = release
            entry = self._entries.get(key)
            if entry is not None and entry[0] > now:
                self._entries.move_to_end(key)
                self.hits += 1
                # A copy: a caller editing its lists must not edit the cached decision.
                return _copy(entry[1])
            if entry is not None:
                del self._entries[key]
            self.misses += 1
        decision = self.pdp.evaluate(prepared)
        if decision.has_reason(PDP_ERROR) or decision.policy_release != release:
            return decision
        with self._lock:
            if release == self._release:
                self._entries[key] = (now + self.ttl_seconds, decision)
                self._entries.move_to_end(key)
                while len(self._entries) > self.maxsize:
                    self._entries.popitem(last=False)
        return _copy(decision)


_LIST_FIELDS = tuple(
    name for name, field in Decision.model_fields.items() if getattr(field.annotation, "__origin__", None) is list
)


def _copy(decision: Decision) -> Decision:
    # The lists hold strings only: fresh lists are as safe as a deep copy and far cheaper.
    return decision.model_copy(update={name: list(getattr(decision, name)) for name in _LIST_FIELDS})
