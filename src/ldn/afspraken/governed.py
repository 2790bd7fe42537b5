"""Governed parameters: values the network reads from the active LAS release instead of constants.

LAS-G-RELEASE-002 says a service that uses an agreed parameter reads it from the release it runs
on and does not hard-code it. This module is the one place where the network names the parameters
it depends on (``NETWORK_PARAMETERS``) and reads them, with the unit and type the code expects, so
a unit change in the agreements (``s`` to ``ms``) fails loudly instead of silently scaling a timeout.

The active release is ``$LDN_LAS_RELEASE`` when set, else the release with status ``current``.
Settings classes use these functions as ``default_factory``, so an explicit environment variable
(``LDN_AUTH_ACCESS_TOKEN_LIFETIME``) still wins; such an override is a deviation from the
agreement and :func:`network_parameters` reports it::

    from ldn.afspraken.governed import access_token_lifetime
    access_token_lifetime()              # 900 in release 1.1.0, 600 with LDN_LAS_RELEASE=2.0.0
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from ldn.afspraken.model import ParameterValue, Problem, ReleaseStatus, Severity
from ldn.afspraken.repository import AfsprakenError, AgreementRepository, default_repository

__all__ = [
    "NETWORK_PARAMETERS",
    "GovernedParameterError",
    "GovernedSpec",
    "NetworkParameter",
    "access_token_lifetime",
    "active_release",
    "check_network_parameters",
    "clock_skew",
    "decision_timeout_ms",
    "governed",
    "holder_timeout",
    "key_overlap_days",
    "max_assertion_lifetime",
    "max_registration_entries",
    "network_parameters",
    "policy_release",
    "restriction_period_days",
    "retention_years",
    "revocation_max_age",
    "spec",
    "sync_interval",
    "sync_jitter",
]


class GovernedParameterError(AfsprakenError):
    """A parameter the network needs is missing from the release, or has another unit or type."""


@dataclass(frozen=True, slots=True)
class GovernedSpec:
    """A parameter the network reads: where it is agreed and what the code expects of it.

    ``setting`` names the settings field that takes its default from the parameter
    (``"module:Class.field"``), or None while no component reads it through settings yet.
    """

    name: str
    agreement_id: str
    unit: str
    type: type[Any]
    setting: str | None = None


#: Every governed parameter the network's code depends on. Adding a row here is how a component
#: declares a dependency; ``ldn afspraken check`` then verifies every valid release provides it.
NETWORK_PARAMETERS: tuple[GovernedSpec, ...] = (
    GovernedSpec("access_token_lifetime", "LAS-TA-AUTH-002", "s", int, "ldn.auth.settings:AuthSettings"),
    GovernedSpec("clock_skew", "LAS-TA-AUTH-001", "s", int, "ldn.auth.settings:AuthSettings"),
    GovernedSpec("max_assertion_lifetime", "LAS-TA-AUTH-001", "s", int, "ldn.auth.settings:AuthSettings"),
    GovernedSpec("sync_interval", "LAS-TA-ADDR-001", "s", float, "ldn.addressing.settings:AddressingSettings"),
    GovernedSpec("sync_jitter", "LAS-TA-ADDR-001", "s", float, "ldn.addressing.settings:AddressingSettings"),
    GovernedSpec("retention_years", "LAS-TA-LOG-001", "a", int, "ldn.audit.settings:AuditSettings"),
    GovernedSpec(
        "max_registration_entries",
        "LAS-TA-NVI-001",
        "1",
        int,
        "ldn.localization.settings:NviSettings.max_bundle_entries",
    ),
    GovernedSpec("revocation_max_age", "LAS-TA-CERT-002", "s", int),
    GovernedSpec("key_overlap_period", "LAS-TA-PRS-002", "d", int),
    GovernedSpec("restriction_period", "LAS-TA-NOTIF-001", "d", int),
    GovernedSpec("holder_timeout", "LAS-TA-PULL-002", "s", float),
    GovernedSpec("decision_timeout", "LAS-TA-AUTHZ-001", "ms", int),
    GovernedSpec("policy_release", "LAS-TA-AUTHZ-001", "version", str),
)
_SPECS = {s.name: s for s in NETWORK_PARAMETERS}


def spec(name: str) -> GovernedSpec:
    try:
        return _SPECS[name]
    except KeyError:
        known = ", ".join(sorted(_SPECS))
        raise GovernedParameterError(f"{name!r} is not a network parameter; known: {known}") from None


def active_release(repo: AgreementRepository | None = None) -> str:
    """Version of the release the network runs on (``$LDN_LAS_RELEASE`` or the current one)."""
    repo = repo or default_repository()
    if repo.default_release is not None:
        return repo.default_release
    return repo.current_release().version


def _typed(s: GovernedSpec, value: ParameterValue, unit: str, where: str) -> Any:
    if unit != s.unit:
        raise GovernedParameterError(f"{s.name} in {where} has unit {unit!r}; the network expects {s.unit!r}")
    if isinstance(value, bool):  # a flag never passes as a number
        ok = s.type is bool
    elif s.type is float:
        ok = isinstance(value, int | float)
    else:
        ok = isinstance(value, s.type)
    if not ok:
        raise GovernedParameterError(
            f"{s.name} in {where} is {type(value).__name__} {value!r}; the network expects {s.type.__name__}"
        )
    return float(value) if s.type is float else value  # type: ignore[arg-type]


def governed(name: str, *, release: str | None = None, repo: AgreementRepository | None = None) -> Any:
    """The value of network parameter ``name`` in ``release`` (default: the active release)."""
    s = spec(name)
    repo = repo or default_repository()
    try:
        info = repo.parameter_info(s.agreement_id, s.name, release=release)
    except AfsprakenError as exc:
        raise GovernedParameterError(f"network parameter {s.name} cannot be read: {exc}") from exc
    return _typed(s, info.value, info.unit, f"{info.agreement_id}@{info.agreement_version} (release {info.release})")


# One function per parameter, so settings can name them as ``default_factory`` and a reader sees
# the unit in the name or the docstring.


def access_token_lifetime() -> int:
    """Seconds an access token lives (LAS-TA-AUTH-002)."""
    return int(governed("access_token_lifetime"))


def clock_skew() -> int:
    """Seconds of clock difference tolerated on iat/nbf/exp (LAS-TA-AUTH-001)."""
    return int(governed("clock_skew"))


def max_assertion_lifetime() -> int:
    """Longest exp - iat, in seconds, of an assertion or client assertion (LAS-TA-AUTH-001)."""
    return int(governed("max_assertion_lifetime"))


def sync_interval() -> float:
    """Seconds between a replica's incremental address-book syncs (LAS-TA-ADDR-001)."""
    return float(governed("sync_interval"))


def sync_jitter() -> float:
    """Random spread, in seconds, on each sync interval (LAS-TA-ADDR-001)."""
    return float(governed("sync_jitter"))


def retention_years() -> int:
    """Years audit records are kept at least (LAS-TA-LOG-001, NEN 7513)."""
    return int(governed("retention_years"))


def max_registration_entries() -> int:
    """Most entries in one NVI registration Bundle (LAS-TA-NVI-001)."""
    return int(governed("max_registration_entries"))


def revocation_max_age() -> int:
    """Oldest revocation information (CRL), in seconds, a validator may rely on (LAS-TA-CERT-002)."""
    return int(governed("revocation_max_age"))


def key_overlap_days() -> int:
    """Days an old PRS key version stays usable after rotation (LAS-TA-PRS-002)."""
    return int(governed("key_overlap_period"))


def restriction_period_days() -> int:
    """Longest restriction period, in days, of a notified-pull referral (LAS-TA-NOTIF-001)."""
    return int(governed("restriction_period"))


def holder_timeout() -> float:
    """Seconds an indexed pull waits for one data holder (LAS-TA-PULL-002)."""
    return float(governed("holder_timeout"))


def decision_timeout_ms() -> int:
    """Milliseconds an authorization decision may take (LAS-TA-AUTHZ-001)."""
    return int(governed("decision_timeout"))


def policy_release() -> str:
    """The reference authorization-policy release the network must run (LAS-TA-AUTHZ-001)."""
    return str(governed("policy_release"))


# --------------------------------------------------------------------------------------------
# What the running process actually uses


@dataclass(frozen=True, slots=True)
class NetworkParameter:
    """A network parameter in the active release, and what this process's settings make of it.

    ``state`` is ``governed`` (the setting takes its default from the agreement and has it),
    ``deviation`` (it takes its default from the agreement but is overridden, e.g. by an
    environment variable), ``hard-coded`` (the setting has the agreed value as a constant),
    ``conflict`` (a constant that differs from the agreement), ``unused`` (no setting reads it
    yet), ``unavailable`` (the settings class could not be loaded) or ``missing`` (the active
    release does not provide the parameter).
    """

    spec: GovernedSpec
    value: Any
    release: str
    agreement_version: str | None
    setting_env: str | None
    effective: Any
    state: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.spec.name,
            "agreement": self.spec.agreement_id,
            "agreement_version": self.agreement_version,
            "release": self.release,
            "value": self.value,
            "unit": self.spec.unit,
            "setting": self.setting_env,
            "effective": self.effective,
            "state": self.state,
        }


def _setting(s: GovernedSpec) -> tuple[type[Any], str] | None:
    if s.setting is None:
        return None
    module_name, _, target = s.setting.partition(":")
    class_name, _, field_name = target.partition(".")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls, field_name or s.name


def _state(cls: type[Any], field_name: str, effective: Any, value: Any) -> str:
    field = cls.model_fields.get(field_name)
    factory = None if field is None else field.default_factory
    wired = factory is not None and getattr(factory, "__module__", "") == __name__
    if wired:
        return "governed" if effective == value else "deviation"
    return "hard-coded" if effective == value else "conflict"


def network_parameters(repo: AgreementRepository | None = None) -> list[NetworkParameter]:
    """Every network parameter: its agreed value in the active release and the effective setting."""
    repo = repo or default_repository()
    release = active_release(repo)
    instances: dict[type[Any], Any] = {}
    out: list[NetworkParameter] = []
    for s in NETWORK_PARAMETERS:
        try:
            info = repo.parameter_info(s.agreement_id, s.name, release=release)
            value: Any = _typed(s, info.value, info.unit, f"release {release}")
            agreement_version: str | None = info.agreement_version
        except AfsprakenError:
            value, agreement_version = None, None
        env_name: str | None = None
        effective: Any = None
        try:
            found = _setting(s)
        except (ImportError, AttributeError):
            found = None
            state = "unavailable"
        else:
            state = "unused"
        if found is not None:
            cls, field_name = found
            env_name = f"{cls.model_config.get('env_prefix', '')}{field_name.upper()}"
            try:
                if cls not in instances:
                    instances[cls] = cls()
                effective = getattr(instances[cls], field_name)
            except (ValidationError, AfsprakenError, AttributeError):
                state = "unavailable"
            else:
                state = _state(cls, field_name, effective, value)
        if agreement_version is None:
            state = "missing"
        out.append(NetworkParameter(s, value, release, agreement_version, env_name, effective, state))
    return out


# --------------------------------------------------------------------------------------------
# Governance check: can the network run on every valid release?


def check_network_parameters(repo: AgreementRepository) -> list[Problem]:
    """Every network parameter must exist, with the expected unit and type, in the current and
    previous release (error: the network must run on both) and in planned releases (warning)."""
    out: list[Problem] = []
    for version in repo.release_versions():
        rel = repo.releases[version]
        if rel.status is ReleaseStatus.RETIRED:
            continue
        severity: Severity = "warning" if rel.status is ReleaseStatus.PLANNED else "error"
        where = repo.display_path(repo.release_sources[version])
        for s in NETWORK_PARAMETERS:
            try:
                info = repo.parameter_info(s.agreement_id, s.name, release=version)
            except AfsprakenError as exc:
                out.append(
                    Problem(
                        "network-parameter-missing",
                        f"{where}:$.agreements.{s.agreement_id}",
                        f"the network reads {s.name} from {s.agreement_id}, but release {version} cannot"
                        f" provide it: {exc}",
                        severity,
                    )
                )
                continue
            try:
                _typed(s, info.value, info.unit, f"{info.agreement_id}@{info.agreement_version}")
            except GovernedParameterError as exc:
                out.append(
                    Problem("network-parameter-type", f"{where}:$.agreements.{s.agreement_id}", str(exc), severity)
                )
    return out
