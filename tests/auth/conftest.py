"""Fixtures for authentication tests: a probe endpoint protected by the resource-server helper."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import pytest
from fastapi import Depends

from ldn.auth.resource_server import Caller, require_caller


@pytest.fixture
def probe_url(network: Any) -> str:
    """`GET <registry>/probe` requires scope nvi:read and echoes the caller."""
    app = network.apps["registry"]

    async def probe(caller: Caller = Depends(require_caller("nvi:read"))) -> dict[str, Any]:
        data = asdict(caller)
        data["scopes"] = sorted(caller.scopes)
        return data

    if not any(getattr(r, "path", "") == "/probe" for r in app.router.routes):
        app.add_api_route("/probe", probe, methods=["GET", "POST"])
    return f"{network.directory.service_url('registry')}/probe"
