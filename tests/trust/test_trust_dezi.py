"""Dezi declarations: issuing, verifying, revocation and the URA binding to the certificate."""

from __future__ import annotations

import base64
import datetime as dt
import json
import stat
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from joserfc import jwt
from joserfc.jwk import ECKey
from trust_helpers import PARTICIPANTS

from ldn.trust.dezi import (
    LOA_HIGH,
    REQUIRED_CLAIMS,
    Declaration,
    DeclarationError,
    DeclarationVerifier,
    DeziIssuer,
    Professional,
    check_ura_binding,
)
from ldn.trust.pki import TestPki
from ldn.trust.uzi import UziServerIdentity, parse_uzi_san_value

BASE = "https://dezi.test.localhost"
EMPLOYER_URA = "00000020"
PROFESSIONAL = Professional(
    dezi_nummer="900012345",
    voorletters="J.",
    voorvoegsel="van der",
    achternaam="Berg",
    rol_code="01.015",
    rol_naam="Huisarts",
)


@pytest.fixture(scope="module")
def issuer_key() -> ECKey:
    return ECKey.generate_key("P-256", private=True, auto_kid=True)


@pytest.fixture(scope="module")
def issuer(issuer_key: ECKey) -> DeziIssuer:
    return DeziIssuer(BASE, issuer_key)


@pytest.fixture(scope="module")
def verifier(issuer: DeziIssuer) -> DeclarationVerifier:
    return DeclarationVerifier(issuer.jwks(), issuer.is_revoked, issuer=issuer.issuer, jku=issuer.jwks_url)


def _token(issuer: DeziIssuer, **kwargs: Any) -> str:
    return issuer.issue_declaration(PROFESSIONAL, EMPLOYER_URA, "Huisartsenpraktijk Test", **kwargs)


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))  # type: ignore[no-any-return]


def _sign(key: ECKey, claims: dict[str, Any], **header: Any) -> str:
    full = {"alg": "ES256", "typ": "JWT", "kid": key.kid, "jku": f"{BASE}/.well-known/jwks.json", **header}
    return jwt.encode(full, claims, key, algorithms=["ES256"])


def _reason(excinfo: pytest.ExceptionInfo[DeclarationError]) -> str:
    return excinfo.value.reason


def test_round_trip(issuer: DeziIssuer, verifier: DeclarationVerifier) -> None:
    token = _token(issuer)
    declaration = verifier.verify(token)
    assert declaration.dezi_nummer == "900012345"
    assert declaration.abonnee_nummer == EMPLOYER_URA
    assert (declaration.voorletters, declaration.voorvoegsel, declaration.achternaam) == ("J.", "van der", "Berg")
    assert (declaration.rol_code, declaration.rol_naam) == ("01.015", "Huisarts")
    assert declaration.claims["loa_dezi"] == LOA_HIGH
    assert str(uuid.UUID(declaration.verklaring_id)) == declaration.verklaring_id
    assert declaration.status_uri == f"{BASE}/status/{declaration.verklaring_id}"
    assert declaration.issuer == BASE
    assert set(REQUIRED_CLAIMS) <= set(declaration.claims)
    assert declaration.claims["jti"] != declaration.verklaring_id
    header = declaration.header
    assert header["alg"] == "ES256"
    assert header["kid"] == issuer.kid
    assert header["jku"] == issuer.jwks_url == f"{BASE}/.well-known/jwks.json"
    assert header["typ"] == "JWT"
    # Claims are read-only after verification.
    with pytest.raises(TypeError):
        declaration.claims["abonnee_nummer"] = "99999999"  # type: ignore[index]


def test_jwks_is_public_only(issuer: DeziIssuer, issuer_key: ECKey) -> None:
    (key,) = issuer.jwks()["keys"]
    assert "d" not in key
    assert (key["kty"], key["crv"], key["kid"], key["alg"], key["use"]) == ("EC", "P-256", issuer.kid, "ES256", "sig")
    secret = issuer_key.as_dict(private=True)["d"]
    assert isinstance(secret, str)
    assert secret not in repr(issuer)
    assert issuer.kid in repr(issuer)


def test_each_declaration_is_unique(issuer: DeziIssuer) -> None:
    first, second = _claims(_token(issuer)), _claims(_token(issuer))
    assert first["verklaring_id"] != second["verklaring_id"]
    assert first["jti"] != second["jti"]


def test_tampered_payload(issuer: DeziIssuer, verifier: DeclarationVerifier) -> None:
    header, _, signature = _token(issuer).split(".")
    claims = _claims(_token(issuer))
    claims["abonnee_nummer"] = "12345670"
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(DeclarationError) as info:
        verifier.verify(f"{header}.{payload}.{signature}")
    assert _reason(info) == "bad_signature"


def test_tampered_signature(issuer: DeziIssuer, verifier: DeclarationVerifier) -> None:
    header, payload, signature = _token(issuer).split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw[10] ^= 0x01
    forged = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    with pytest.raises(DeclarationError) as info:
        verifier.verify(f"{header}.{payload}.{forged}")
    assert _reason(info) == "bad_signature"


def test_expiry_with_skew(issuer: DeziIssuer, verifier: DeclarationVerifier) -> None:
    issued = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)
    token = _token(issuer, lifetime=dt.timedelta(minutes=5), now=issued)
    exp = dt.datetime.fromtimestamp(_claims(token)["exp"], dt.UTC)
    assert verifier.verify(token, now=exp + dt.timedelta(seconds=4)).abonnee_nummer == EMPLOYER_URA
    with pytest.raises(DeclarationError) as info:
        verifier.verify(token, now=exp + dt.timedelta(seconds=6))
    assert _reason(info) == "expired"
    with pytest.raises(DeclarationError) as info:
        verifier.verify(token)
    assert _reason(info) == "expired"


def test_not_before_in_future(issuer: DeziIssuer, verifier: DeclarationVerifier) -> None:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    within = _token(issuer, now=now + dt.timedelta(seconds=3))
    assert verifier.verify(within, now=now).dezi_nummer == "900012345"
    beyond = _token(issuer, now=now + dt.timedelta(seconds=60))
    with pytest.raises(DeclarationError) as info:
        verifier.verify(beyond, now=now)
    assert _reason(info) == "not_yet_valid"


def test_configurable_skew(issuer: DeziIssuer) -> None:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    token = _token(issuer, now=now + dt.timedelta(seconds=30))
    lenient = DeclarationVerifier(issuer.jwks(), issuer.is_revoked, skew=dt.timedelta(seconds=60))
    assert lenient.verify(token, now=now).abonnee_nummer == EMPLOYER_URA


def test_wrong_issuer_key(issuer: DeziIssuer) -> None:
    impostor = DeziIssuer.generate(BASE)
    token = impostor.issue_declaration(PROFESSIONAL, EMPLOYER_URA, "Huisartsenpraktijk Test")
    verifier = DeclarationVerifier(issuer.jwks(), issuer.is_revoked)
    with pytest.raises(DeclarationError) as info:
        verifier.verify(token)
    assert _reason(info) == "unknown_key"


def test_wrong_key_under_the_trusted_kid(issuer: DeziIssuer) -> None:
    impostor_key = ECKey.generate_key("P-256", private=True, parameters={"kid": issuer.kid})
    claims = _claims(_token(issuer))
    verifier = DeclarationVerifier(issuer.jwks(), issuer.is_revoked)
    with pytest.raises(DeclarationError) as info:
        verifier.verify(_sign(impostor_key, claims))
    assert _reason(info) == "bad_signature"


def test_revoked(issuer: DeziIssuer, verifier: DeclarationVerifier) -> None:
    token = _token(issuer)
    verifier.verify(token)
    issuer.revoke(_claims(token)["verklaring_id"])
    with pytest.raises(DeclarationError) as info:
        verifier.verify(token)
    assert _reason(info) == "revoked"
    verifier.verify(_token(issuer))  # other declarations are unaffected


def test_failing_revocation_lookup_fails_closed(issuer: DeziIssuer) -> None:
    def broken(_: str) -> bool:
        raise ConnectionError("status service down")

    verifier = DeclarationVerifier(issuer.jwks(), broken)
    with pytest.raises(DeclarationError) as info:
        verifier.verify(_token(issuer))
    assert _reason(info) == "revocation_unknown"


@pytest.mark.parametrize("claim", REQUIRED_CLAIMS)
def test_missing_claim(issuer: DeziIssuer, issuer_key: ECKey, verifier: DeclarationVerifier, claim: str) -> None:
    claims = _claims(_token(issuer))
    del claims[claim]
    with pytest.raises(DeclarationError) as info:
        verifier.verify(_sign(issuer_key, claims))
    assert _reason(info) == "invalid_claims"
    assert claim in str(info.value)


@pytest.mark.parametrize(
    ("claim", "value", "reason"),
    [
        ("abonnee_nummer", "0000002", "invalid_claims"),
        ("abonnee_nummer", 20, "invalid_claims"),
        ("abonnee_nummer", "0000002O", "invalid_claims"),
        ("dezi_nummer", "90001234", "invalid_claims"),
        ("dezi_nummer", "９00012345", "invalid_claims"),
        ("rol_code", "1.015", "invalid_claims"),
        ("rol_code", "01015", "invalid_claims"),
        ("achternaam", "", "invalid_claims"),
        ("status_uri", "javascript:alert(1)", "invalid_claims"),
        ("exp", True, "invalid_claims"),
        ("iat", "1700000000", "invalid_claims"),
        ("loa_dezi", "http://eidas.europa.eu/LoA/substantial", "insufficient_loa"),
        ("iss", "https://evil.example", "wrong_issuer"),
    ],
)
def test_ill_formed_claims(
    issuer: DeziIssuer, issuer_key: ECKey, verifier: DeclarationVerifier, claim: str, value: object, reason: str
) -> None:
    claims = _claims(_token(issuer))
    claims[claim] = value
    with pytest.raises(DeclarationError) as info:
        verifier.verify(_sign(issuer_key, claims))
    assert _reason(info) == reason


def test_empty_voorvoegsel_is_allowed(issuer: DeziIssuer, verifier: DeclarationVerifier) -> None:
    professional = Professional(
        dezi_nummer="900054321", voorletters="A.", achternaam="Jansen", rol_code="17.000", rol_naam="Apotheker"
    )
    token = issuer.issue_declaration(professional, "12345670", "Apotheek Test")
    assert verifier.verify(token).voorvoegsel == ""


def test_lifetime_limits(issuer: DeziIssuer, issuer_key: ECKey, verifier: DeclarationVerifier) -> None:
    claims = _claims(_token(issuer))
    claims["exp"] = claims["nbf"] + 48 * 3600
    with pytest.raises(DeclarationError, match="lifetime"):
        verifier.verify(_sign(issuer_key, claims))
    claims["exp"] = claims["nbf"]
    with pytest.raises(DeclarationError, match="later than nbf"):
        verifier.verify(_sign(issuer_key, claims))


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ({"typ": "at+jwt"}, "malformed"),
        ({"jku": "https://evil.example/jwks.json"}, "unknown_key"),
        ({"kid": "unknown"}, "unknown_key"),
    ],
)
def test_header_checks(
    issuer: DeziIssuer, issuer_key: ECKey, verifier: DeclarationVerifier, header: dict[str, str], reason: str
) -> None:
    with pytest.raises(DeclarationError) as info:
        verifier.verify(_sign(issuer_key, _claims(_token(issuer)), **header))
    assert _reason(info) == reason


def test_unsigned_and_symmetric_tokens_are_refused(issuer: DeziIssuer, verifier: DeclarationVerifier) -> None:
    claims = _claims(_token(issuer))

    def b64(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    none_token = f"{b64({'alg': 'none', 'typ': 'JWT', 'kid': issuer.kid})}.{b64(claims)}."
    hs_token = f"{b64({'alg': 'HS256', 'typ': 'JWT', 'kid': issuer.kid})}.{b64(claims)}.c2ln"
    for token in (none_token, hs_token, "not-a-jwt", "a.b.c", "", "x" * 9000):
        with pytest.raises(DeclarationError) as info:
            verifier.verify(token)
        assert _reason(info) == "malformed", token[:40]


def test_duplicate_claims_are_refused(issuer: DeziIssuer, issuer_key: ECKey, verifier: DeclarationVerifier) -> None:
    from joserfc import jws

    claims = _claims(_token(issuer))
    body = json.dumps(claims)[:-1] + ', "abonnee_nummer": "12345670"}'
    header = {"alg": "ES256", "typ": "JWT", "kid": issuer_key.kid, "jku": issuer.jwks_url}
    token = jws.serialize_compact(header, body, issuer_key, algorithms=["ES256"])
    with pytest.raises(DeclarationError) as info:
        verifier.verify(token)
    assert _reason(info) == "malformed"


# -- URA binding ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def presenting_pki() -> TestPki:
    pki = TestPki.create()
    for participant in PARTICIPANTS:
        pki.issue(participant)
    return pki


def test_ura_binding_matches(issuer: DeziIssuer, verifier: DeclarationVerifier, presenting_pki: TestPki) -> None:
    own = presenting_pki.credential(EMPLOYER_URA).identity
    declaration = verifier.verify(_token(issuer), presented_by=own)
    check_ura_binding(declaration, own)
    check_ura_binding(dict(declaration.claims), own)


def test_ura_mismatch_with_certificate(
    issuer: DeziIssuer, verifier: DeclarationVerifier, presenting_pki: TestPki
) -> None:
    other = presenting_pki.credential(PARTICIPANTS[1].ura).identity
    token = _token(issuer)
    with pytest.raises(DeclarationError) as info:
        verifier.verify(token, presented_by=other)
    assert _reason(info) == "ura_mismatch"
    declaration = verifier.verify(token)
    with pytest.raises(DeclarationError) as info:
        check_ura_binding(declaration, other)
    assert _reason(info) == "ura_mismatch"


def test_ura_binding_compares_strings_not_numbers() -> None:
    identity = parse_uzi_san_value("2.16.528.1.1007.99.2110-1-900000001-S-00000020-00.000-12345678")
    with pytest.raises(DeclarationError) as info:
        check_ura_binding({"abonnee_nummer": 20}, identity)
    assert _reason(info) == "invalid_claims"
    with pytest.raises(DeclarationError) as info:
        check_ura_binding({"abonnee_nummer": "20"}, identity)
    assert _reason(info) == "invalid_claims"
    with pytest.raises(DeclarationError):
        check_ura_binding({}, identity)


@settings(max_examples=100, deadline=None)
@given(
    claim_ura=st.text(alphabet="0123456789", min_size=8, max_size=8),
    cert_ura=st.text(alphabet="0123456789", min_size=8, max_size=8),
)
def test_ura_binding_property(claim_ura: str, cert_ura: str) -> None:
    identity = UziServerIdentity(uzi_number="1", ura=cert_ura, agb="00000000", raw="")
    if claim_ura == cert_ura:
        check_ura_binding({"abonnee_nummer": claim_ura}, identity)
    else:
        with pytest.raises(DeclarationError):
            check_ura_binding({"abonnee_nummer": claim_ura}, identity)


# -- construction ---------------------------------------------------------------------------


def test_issuer_refuses_bad_input(issuer: DeziIssuer) -> None:
    with pytest.raises(ValueError, match="employer_ura"):
        issuer.issue_declaration(PROFESSIONAL, "20", "X")
    with pytest.raises(ValueError, match="lifetime"):
        issuer.issue_declaration(PROFESSIONAL, EMPLOYER_URA, "X", lifetime=dt.timedelta(0))
    with pytest.raises(ValueError, match="dezi_nummer"):
        Professional(dezi_nummer="12345678", voorletters="A.", achternaam="B", rol_code="01.015", rol_naam="x")
    with pytest.raises(ValueError, match="rol_code"):
        Professional(dezi_nummer="123456789", voorletters="A.", achternaam="B", rol_code="1.015", rol_naam="x")


def test_verifier_refuses_bad_jwks(issuer: DeziIssuer) -> None:
    with pytest.raises(ValueError, match="keys"):
        DeclarationVerifier({}, issuer.is_revoked)
    with pytest.raises(ValueError, match="P-256"):
        DeclarationVerifier({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "x"}]}, issuer.is_revoked)
    key = issuer.jwks()["keys"][0]
    with pytest.raises(ValueError, match="duplicate"):
        DeclarationVerifier({"keys": [key, key]}, issuer.is_revoked)


def test_private_jwks_is_reduced_to_public(issuer_key: ECKey, issuer: DeziIssuer) -> None:
    verifier = DeclarationVerifier({"keys": [issuer_key.as_dict(private=True)]}, issuer.is_revoked)
    assert isinstance(verifier.verify(_token(issuer)), Declaration)


def test_load_or_create_persists_key(tmp_path: Path) -> None:
    path = tmp_path / "dezi" / "signing.key.pem"
    first = DeziIssuer.load_or_create(path, BASE + "/")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    second = DeziIssuer.load_or_create(path, BASE)
    assert first.kid == second.kid
    assert first.base_url == BASE
    token = first.issue_declaration(PROFESSIONAL, EMPLOYER_URA, "X")
    assert DeclarationVerifier(second.jwks(), second.is_revoked).verify(token).issuer == BASE
    path.write_text("-----BEGIN PRIVATE KEY-----\nTOPSECRET\n-----END PRIVATE KEY-----\n")
    with pytest.raises(ValueError, match="cannot load") as info:
        DeziIssuer.load_or_create(path, BASE)
    assert "TOPSECRET" not in str(info.value)
