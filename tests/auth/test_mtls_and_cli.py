"""Real processes: `ldn up --tls` (mutual TLS, revocation, certificate-bound tokens) and `ldn token`."""

from __future__ import annotations

import os
import ssl
from pathlib import Path

import httpx
import pytest

from tests.processes import free_port, run_cli, start, stop, wait_for_network

pytestmark = pytest.mark.slow


@pytest.fixture
def env(tmp_path: Path, database_url: str) -> dict[str, str]:
    # This test revokes certificates: it gets a PKI of its own.
    return {
        **os.environ,
        "LDN_DATABASE_URL": database_url,
        "LDN_DATA_DIR": str(tmp_path / "var"),
        "LDN_AUTH_PKI_DIR": str(tmp_path / "var" / "pki"),
    }


def tls_client(pki: Path, ura: str | None) -> httpx.Client:
    context = ssl.create_default_context(cafile=str(pki / "ca" / "bundle.pem"))
    if ura is not None:
        context.load_cert_chain(str(pki / "orgs" / ura / "chain.pem"), str(pki / "orgs" / ura / "key.pem"))
    return httpx.Client(verify=context, timeout=5)


def test_mutual_tls_revocation_and_certificate_bound_tokens(tmp_path: Path, env: dict[str, str]) -> None:
    port = free_port()
    proc = start(["up", "--tls", "--port", str(port)], tmp_path, env)
    try:
        network = wait_for_network(proc, tmp_path / "var")
        pki = tmp_path / "var" / "pki"
        registry = network["services"]["registry"]
        assert registry.startswith("https://")
        # no client certificate: the TLS handshake fails
        with pytest.raises(httpx.TransportError), tls_client(pki, None) as anonymous:
            anonymous.get(f"{registry}/health")
        with tls_client(pki, "00000020") as gp:
            assert gp.get(f"{registry}/health").status_code == 200
        # a token obtained over TLS is bound to the certificate that obtained it
        token = run_cli(["token", "--org", "00000020", "--aud", "registry", "--scope", "nvi:read"], tmp_path, env)
        assert token.returncode == 0, token.stderr
        bearer = {"Authorization": f"Bearer {token.stdout.strip()}"}
        whoami = f"{network['services']['auth']}/whoami"
        with tls_client(pki, "00000020") as gp:
            assert gp.get(whoami, headers=bearer).json()["organization_ura"] == "00000020"
        with tls_client(pki, "00000040") as hospital:
            stolen = hospital.get(whoami, headers=bearer)
        assert stolen.status_code == 401
        assert "bound to another TLS client certificate" in stolen.json()["error_description"]
        # revocation takes effect in the running network
        revoked = run_cli(["pki", "revoke", "00000040"], tmp_path, env)
        assert revoked.returncode == 0, revoked.stderr
        with tls_client(pki, "00000040") as hospital:
            refused = hospital.get(f"{registry}/health")
        assert refused.status_code == 401
        assert "revoked" in refused.json()["issue"][0]["diagnostics"]
        refused_token = run_cli(
            ["token", "--org", "00000040", "--aud", "registry", "--scope", "nvi:read"], tmp_path, env
        )
        assert refused_token.returncode != 0
    finally:
        stop(proc)


def test_ldn_token_prints_a_usable_token(tmp_path: Path, env: dict[str, str]) -> None:
    port = free_port()
    proc = start(["up", "--port", str(port)], tmp_path, env)
    try:
        network = wait_for_network(proc, tmp_path / "var")
        result = run_cli(
            [
                "token",
                "--org",
                "00000040",
                "--as",
                "900000031",
                "--aud",
                "registry",
                "--scope",
                "nvi:read",
                "--patient",
                "999990019",
            ],
            tmp_path,
            env,
        )
        assert result.returncode == 0, result.stderr
        token = result.stdout.strip()
        me = httpx.get(f"{network['services']['auth']}/whoami", headers={"Authorization": f"Bearer {token}"}).json()
        assert me["user_id"] == "900000031"
        assert me["user_assurance"] == "dezi"
        assert me["patient_bound"] is True
        as_json = run_cli(
            ["token", "--org", "00000040", "--aud", "registry", "--scope", "nvi:read", "--json"], tmp_path, env
        )
        assert '"token_type": "Bearer"' in as_json.stdout
        refused = run_cli(["token", "--org", "00000040", "--aud", "registry", "--scope", "prs:admin"], tmp_path, env)
        assert refused.returncode == 1
        assert "invalid_scope" in refused.stderr
        # the CLI revocation of a Dezi declaration reaches the running provider
        declaration = run_cli(["dezi", "declaration", "900000031"], tmp_path, env).stdout.strip()
        import base64
        import json

        payload = declaration.split(".")[1]
        verklaring_id = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["verklaring_id"]
        assert run_cli(["dezi", "revoke", verklaring_id], tmp_path, env).returncode == 0
        status = httpx.get(f"{network['services']['dezi']}/status/{verklaring_id}").json()
        assert status["status"] == "revoked"
    finally:
        stop(proc)
