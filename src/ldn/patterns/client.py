"""The client side of one node: its tokens, its address book, PRS and NVI, on a professional's behalf.

One `NodeClient` per node app (`client_for(ctx, ura)`). It holds a `TokenClient` with the node's
own certificate (DPoP-bound tokens), answers addressing questions from the node's replica (one
on-demand sync when an address is not there yet: a freshly started node, or a provider that
published moments ago), and builds `LocalizationClient`s whose NVI searches carry the professional.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from ldn.addressing.replica import AddressNotFound, ReplicaLookups, lookups_for
from ldn.auth.client import AccessToken, TokenClient
from ldn.auth.settings import AuthSettings
from ldn.auth.trust_store import trust_store
from ldn.core.service import ServiceContext
from ldn.localization.client import LocalizationClient
from ldn.patterns.identity import Professional
from ldn.patterns.settings import PatternsSettings

__all__ = ["NodeClient", "client_for"]

logger = logging.getLogger("ldn.patterns.client")

T = TypeVar("T")
_EXTRA = "patterns_client"
REFRESH_INTERVAL = 5.0  # seconds between on-demand replica syncs triggered by a lookup miss
LOCALIZATION_CLIENTS = 256  # professionals whose localization client (and PRS version cache) is kept
ADDRESS_TTL = 30.0  # seconds an endpoint address found in the replica is reused without asking it again


class NodeClient:
    """What a node needs to talk to others: tokens, addresses, localization."""

    def __init__(self, ctx: ServiceContext, ura: str) -> None:
        self.ctx = ctx
        self.ura = ura
        self._tokens: TokenClient | None = None
        self._lock = asyncio.Lock()
        self._last_refresh = 0.0
        self._addresses: dict[tuple[str, str], tuple[float, str]] = {}
        self._localization: OrderedDict[tuple[str, str, str], LocalizationClient] = OrderedDict()

    async def tokens(self) -> TokenClient:
        if self._tokens is None:
            async with self._lock:
                if self._tokens is None:
                    pki = AuthSettings().resolved_pki_dir(self.ctx.settings.data_dir)
                    store = await asyncio.to_thread(trust_store, pki, self.ctx.topology)
                    self._tokens = TokenClient(
                        store.credential(self.ura), self.ctx.http.client(), use_dpop=PatternsSettings().dpop
                    )
        return self._tokens

    @property
    def national_token_endpoint(self) -> str:
        return f"{self.ctx.directory.service_url('auth').rstrip('/')}/token"

    async def token(
        self,
        endpoint: str,
        scope: str,
        *,
        professional: Professional | None = None,
        patient: str | None = None,
        authorization_base: str | None = None,
    ) -> AccessToken:
        """A token at `endpoint`; with a professional, their Dezi declaration goes into the assertion."""
        tokens = await self.tokens()
        return await tokens.token(
            endpoint,
            scope,
            user_id=professional.uzi if professional else None,
            dezi_declaration=professional.declaration if professional else None,
            patient=patient,
            authorization_base=authorization_base,
        )

    # ---- addressing ---------------------------------------------------------------------------

    def lookups(self) -> ReplicaLookups:
        return lookups_for(self.ctx)

    async def _refresh(self) -> bool:
        syncer: Any = self.ctx.extras.get("addressing_syncer")
        if syncer is None or time.monotonic() - self._last_refresh < REFRESH_INTERVAL:
            return False
        self._last_refresh = time.monotonic()
        try:
            await syncer.sync_once()
        except Exception as exc:  # noqa: BLE001 - the lookup then fails as it would have
            logger.warning("on-demand addressing sync of %s failed: %s", self.ura, exc.__class__.__name__)
            return False
        return True

    async def address(self, lookup: Callable[[ReplicaLookups], Awaitable[T]]) -> T:
        """Run a replica lookup; on a miss, sync the replica once and ask again."""
        lookups = self.lookups()
        try:
            return await lookup(lookups)
        except AddressNotFound:
            if not await self._refresh():
                raise
        return await lookup(lookups)

    async def endpoint(self, ura: str, payload_type: str) -> str:
        """The address of `ura`'s active endpoint for `payload_type` (kept `ADDRESS_TTL` seconds:
        the replica itself changes only every sync interval, and a query asks for several)."""
        key = (ura, payload_type)
        found = self._addresses.get(key)
        if found is not None and found[0] > time.monotonic():
            return found[1]
        address = await self.address(lambda lookups: lookups.endpoint_address(ura, payload_type))
        self._addresses[key] = (time.monotonic() + ADDRESS_TTL, address)
        return address

    async def fhir_base(self, ura: str) -> str:
        return await self.endpoint(ura, "fhir-query-r4")

    async def token_endpoint(self, ura: str) -> str:
        return await self.endpoint(ura, "oauth-token")

    def forget_addresses(self) -> None:
        self._addresses.clear()

    async def ensure_replica(self) -> None:
        """Make sure the replica has finished its initial load (demo and tools; nodes sync anyway)."""
        status = await self.lookups().status()
        if not status.ready:
            syncer: Any = self.ctx.extras.get("addressing_syncer")
            if syncer is not None:
                await syncer.sync_once()

    # ---- localization -------------------------------------------------------------------------

    def localization(self, professional: Professional | None = None) -> LocalizationClient:
        """A PRS/NVI client as this node; NVI searches carry the professional (the NVI wants one).
        Kept per professional (its cache of the PRS key versions then lasts between queries)."""
        # Keyed on the directory's PRS/NVI addresses too: a moved service gets a fresh client.
        directory = self.ctx.directory
        key = (
            professional.declaration if professional is not None else "",
            directory.service_url("prs"),
            directory.service_url("nvi"),
        )
        found = self._localization.get(key)
        if found is not None:
            self._localization.move_to_end(key)
            return found
        made = self._make_localization(professional)
        self._localization[key] = made
        while len(self._localization) > LOCALIZATION_CLIENTS:
            self._localization.popitem(last=False)
        return made

    def _make_localization(self, professional: Professional | None) -> LocalizationClient:

        async def auth(method: str, url: str, scope: str) -> Mapping[str, str]:
            person = professional if scope == "nvi:read" else None
            token = await self.token(self.national_token_endpoint, scope, professional=person)
            return token.headers(method, url)

        return LocalizationClient(
            self.ctx.http.client(),
            prs_url=self.ctx.directory.service_url("prs"),
            nvi_url=self.ctx.directory.service_url("nvi"),
            auth=auth,
            custodian_ura=self.ura,
        )


def client_for(ctx: ServiceContext, ura: str) -> NodeClient:
    existing = ctx.extras.get(_EXTRA)
    if isinstance(existing, NodeClient):
        return existing
    made = NodeClient(ctx, ura)
    ctx.extras[_EXTRA] = made
    return made
