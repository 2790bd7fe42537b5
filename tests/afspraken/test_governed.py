"""The network obeys the agreement system: services read governed parameters from the active release.

Switching `LDN_LAS_RELEASE` from the current release (1.1.0, access tokens 900 s) to 2.0.0 (600 s)
changes what the running authorization server issues and what a resource server accepts.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from ldn.afspraken import AgreementRepository, default_repository
from ldn.afspraken.governed import (
    NETWORK_PARAMETERS,
    GovernedParameterError,
    access_token_lifetime,
    active_release,
    check_network_parameters,
    clock_skew,
    governed,
    max_assertion_lifetime,
    network_parameters,
    retention_years,
    sync_interval,
    sync_jitter,
)
from ldn.afspraken.repository import load_yaml
from ldn.auth.token_service import CLIENT_ASSERTION_TYPE, JWT_BEARER
from ldn.core.config import CoreSettings
from ldn.core.storage import Database
from ldn.core.topology import Topology
from tests.afspraken.las_helpers import SHIPPED, LasBuilder, codes, only
from tests.auth_helpers import token_client, token_endpoint
from tests.conftest import NETWORK_BASE


@pytest.fixture(autouse=True)
def _no_pinned_release(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every test here decides the release itself; an operator's shell must not leak in.
    monkeypatch.delenv("LDN_LAS_RELEASE", raising=False)
    monkeypatch.delenv("LDN_AFSPRAKENSTELSEL", raising=False)
    for s in NETWORK_PARAMETERS:
        monkeypatch.delenv(f"LDN_AUTH_{s.name.upper()}", raising=False)


@asynccontextmanager
async def running_network(
    settings: CoreSettings, topology: Topology, database: Database
) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    """Build the embedded network now, so its settings are read under the environment set so far."""
    from ldn.network.runtime import build_network

    net = build_network(settings, topology, database, base_url=NETWORK_BASE)
    async with (
        net.app.router.lifespan_context(net.app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=net.app, raise_app_exceptions=False), base_url=NETWORK_BASE
        ) as client,
    ):
        yield net, client


async def _issue(client: httpx.AsyncClient, net: Any) -> dict[str, Any]:
    """A token straight from the token endpoint, to see the raw `expires_in`."""
    tokens = token_client(client, net, "00000020")
    endpoint = token_endpoint(net, "auth")
    form = {
        "grant_type": JWT_BEARER,
        "assertion": tokens.assertion(endpoint.rsplit("/token", 1)[0]),
        "client_assertion_type": CLIENT_ASSERTION_TYPE,
        "client_assertion": tokens.client_assertion(endpoint),
        "scope": "nvi:read",
    }
    response = await client.post(endpoint, data=form)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _introspect(client: httpx.AsyncClient, net: Any, token: str) -> dict[str, Any]:
    introspecting = token_client(client, net, "90000901")
    url = f"{net.directory.service_url('auth')}/introspect"
    form = {
        "token": token,
        "client_assertion_type": CLIENT_ASSERTION_TYPE,
        "client_assertion": introspecting.client_assertion(url),
    }
    data: dict[str, Any] = (await client.post(url, data=form)).json()
    return data


def _clock(at: float) -> Callable[[], float]:
    start = time.monotonic()
    return lambda: at + (time.monotonic() - start)


async def test_access_token_lifetime_follows_release(
    settings: CoreSettings, topology: Topology, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, tuple[int, int, int]] = {}
    for release in ("1.1.0", "2.0.0"):
        monkeypatch.setenv("LDN_LAS_RELEASE", release)
        async with running_network(settings, topology, database) as (net, client):
            body = await _issue(client, net)
            claims = await _introspect(client, net, body["access_token"])
            assert claims["active"] is True
            # Behaviour, not just a number: 700 s after issue the token is still good under
            # 1.1.0 (900 s) and refused under 2.0.0 (600 s).
            whoami = f"{net.directory.service_url('auth')}/whoami"
            # Every clock in the process moves, so the resource server's own signed request to
            # the introspection endpoint stays valid; only the token's age differs.
            with monkeypatch.context() as later:
                later.setattr(time, "time", _clock(time.time() + 700))
                response = await client.get(whoami, headers={"Authorization": f"Bearer {body['access_token']}"})
            seen[release] = (body["expires_in"], claims["exp"] - claims["iat"], response.status_code)
            if response.status_code == 401:
                assert response.json()["error"] == "invalid_token"
                assert "not active" in response.json()["error_description"]

    assert seen["1.1.0"] == (900, 900, 200)
    assert seen["2.0.0"] == (600, 600, 401)


def test_governed_functions_read_the_active_release(monkeypatch: pytest.MonkeyPatch) -> None:
    assert active_release() == "1.1.0"
    assert (access_token_lifetime(), clock_skew(), max_assertion_lifetime()) == (900, 5, 300)
    assert (sync_interval(), sync_jitter(), retention_years()) == (900.0, 120.0, 5)
    assert type(sync_interval()) is float and type(access_token_lifetime()) is int
    monkeypatch.setenv("LDN_LAS_RELEASE", "2.0.0")
    assert active_release() == "2.0.0"
    assert access_token_lifetime() == 600
    assert governed("policy_release") == "2027.1"
    assert governed("access_token_lifetime", release="1.0.0") == 900
    with pytest.raises(GovernedParameterError, match="not a network parameter"):
        governed("no_such_parameter")


def test_unknown_pinned_release_stops_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from ldn.afspraken import UnknownReleaseError
    from ldn.auth.settings import AuthSettings

    monkeypatch.setenv("LDN_LAS_RELEASE", "9.0.0")
    with pytest.raises(UnknownReleaseError, match=r"release 9\.0\.0 does not exist"):
        AuthSettings()


def test_explicit_setting_overrides_and_is_reported_as_a_deviation(monkeypatch: pytest.MonkeyPatch) -> None:
    from ldn.auth.settings import AuthSettings

    monkeypatch.setenv("LDN_LAS_RELEASE", "2.0.0")
    assert AuthSettings().access_token_lifetime == 600
    monkeypatch.setenv("LDN_AUTH_ACCESS_TOKEN_LIFETIME", "300")
    assert AuthSettings().access_token_lifetime == 300
    state = {p.spec.name: p for p in network_parameters()}
    assert state["access_token_lifetime"].state == "deviation"
    assert (state["access_token_lifetime"].value, state["access_token_lifetime"].effective) == (600, 300)
    assert state["clock_skew"].state == "governed"
    # The settings' own limits still hold for an override (15 minutes at most).
    monkeypatch.setenv("LDN_AUTH_ACCESS_TOKEN_LIFETIME", "3600")
    with pytest.raises(ValueError, match="less than or equal to 900"):
        AuthSettings()


def _shipped_copy(tmp_path: Path) -> Path:
    import shutil

    root = tmp_path / "afsprakenstelsel"
    shutil.copytree(SHIPPED, root)
    return root


def _set_value(root: Path, agreement_id: str, name: str, value: Any, unit: str | None = None) -> None:
    """Change a parameter in the version the current release names (main file or history/)."""
    repo = AgreementRepository.load(root, strict=True)
    agreement = repo.current_release().get(agreement_id)
    path = repo.source(agreement)
    data = load_yaml(path)
    data["parameters"][name]["value"] = value
    if unit is not None:
        data["parameters"][name]["unit"] = unit
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")


#: (parameter, settings class, field, a value different from every shipped release)
WIRED = [
    ("access_token_lifetime", "ldn.auth.settings:AuthSettings", "access_token_lifetime", 480),
    ("clock_skew", "ldn.auth.settings:AuthSettings", "clock_skew", 2),
    ("max_assertion_lifetime", "ldn.auth.settings:AuthSettings", "max_assertion_lifetime", 120),
    ("sync_interval", "ldn.addressing.settings:AddressingSettings", "sync_interval", 600),
    ("sync_jitter", "ldn.addressing.settings:AddressingSettings", "sync_jitter", 30),
    ("retention_years", "ldn.audit.settings:AuditSettings", "retention_years", 7),
]


def test_every_wired_setting_follows_the_agreement(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    def current(settings_class: str, field: str) -> Any:
        module_name, class_name = settings_class.split(":")
        return getattr(getattr(importlib.import_module(module_name), class_name)(), field)

    before = {name: current(cls, field) for name, cls, field, _ in WIRED}
    assert before == {name: governed(name) for name, _, _, _ in WIRED}
    # One edited copy of the shipped system (loading is the slow part), every value changed.
    root = _shipped_copy(tmp_path)
    for name, _, _, value in WIRED:
        spec = next(s for s in NETWORK_PARAMETERS if s.name == name)
        _set_value(root, spec.agreement_id, name, value)
    monkeypatch.setenv("LDN_AFSPRAKENSTELSEL", str(root))
    for name, cls, field, value in WIRED:
        after = current(cls, field)
        assert after == value != before[name], name
        assert type(after) is next(s.type for s in NETWORK_PARAMETERS if s.name == name), name
    wired = {s.name for s in NETWORK_PARAMETERS if s.setting is not None} - {"max_registration_entries"}
    assert wired == {name for name, _, _, _ in WIRED}


def test_a_setting_not_yet_wired_shows_as_a_conflict() -> None:
    # NviSettings.max_bundle_entries is still a constant (5000) while LAS-TA-NVI-001 says 1000:
    # the parameters report makes that visible instead of hiding it.
    state = {p.spec.name: p for p in network_parameters()}["max_registration_entries"]
    assert (state.value, state.setting_env) == (1000, "LDN_NVI_MAX_BUNDLE_ENTRIES")
    assert state.state == ("governed" if state.effective == 1000 else "conflict")


def test_unit_change_fails_loudly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _shipped_copy(tmp_path)
    _set_value(root, "LAS-TA-ADDR-001", "sync_interval", 900000, unit="ms")
    monkeypatch.setenv("LDN_AFSPRAKENSTELSEL", str(root))
    with pytest.raises(GovernedParameterError, match="unit 'ms'; the network expects 's'"):
        sync_interval()
    problems = check_network_parameters(default_repository())
    (problem,) = [p for p in only(problems, "network-parameter-type") if p.is_error]
    assert problem.location == "afsprakenstelsel/releases/1.1.0.yaml:$.agreements.LAS-TA-ADDR-001"


def test_text_where_a_number_is_expected_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _shipped_copy(tmp_path)
    _set_value(root, "LAS-TA-AUTH-002", "access_token_lifetime", "900")
    monkeypatch.setenv("LDN_AFSPRAKENSTELSEL", str(root))
    with pytest.raises(GovernedParameterError, match="is str '900'; the network expects int"):
        access_token_lifetime()


def test_shipped_valid_releases_provide_every_network_parameter() -> None:
    assert check_network_parameters(default_repository()) == []


def test_missing_network_parameters_are_errors_in_valid_releases(las: LasBuilder) -> None:
    las.release("0.9.0", {"LAS-P-TEST-001": "1.0.0"}, status="previous", date="2025-09-01")
    las.release("2.0.0", {"LAS-P-TEST-001": "1.0.0"}, status="planned", date="2027-03-01")
    problems = check_network_parameters(las.load())
    missing = only(problems, "network-parameter-missing")
    per_release = {
        version: {p.severity for p in missing if f"releases/{version}.yaml" in p.location}
        for version in ("0.9.0", "1.0.0", "2.0.0")
    }
    assert per_release == {"0.9.0": {"error"}, "1.0.0": {"error"}, "2.0.0": {"warning"}}
    current = [p for p in missing if "releases/1.0.0.yaml" in p.location]
    assert len(current) == len(NETWORK_PARAMETERS)
    assert any("access_token_lifetime" in p.message and "LAS-TA-AUTH-002" in p.message for p in current)
    assert codes(problems) == {"network-parameter-missing"}
