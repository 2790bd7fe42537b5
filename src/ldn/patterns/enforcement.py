"""The sender's enforcement point for notified pull: a token with an authorization base.

The node FHIR API's `authorize_request` hands a request here when the caller's token carries an
`authorization_base` (the receiver of a referral pulling). The base names a workflow Task this node
sent; its owner, listed queries, restriction end and status become the policy's
`context.referral`, and the authorization function's enforcement point decides with the
notified-pull policy (LAS-TA-AUTHZ-002). No Mitz question is asked: the referral is the
authorization base. A base that names no referral of this node is refused at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from starlette.requests import Request

from ldn.auth.resource_server import Caller
from ldn.authz.input_builder import bgz_record_types, patient_id_of
from ldn.authz.pep import PolicyEnforcementPoint, pep_for
from ldn.authz.settings import AuthzSettings
from ldn.core.errors import Forbidden
from ldn.core.service import ServiceContext
from ldn.patterns.verwijzen import referral_context

__all__ = ["authorize_referral_request"]


async def authorize_referral_request(
    request: Request,
    caller: Caller,
    resource_type: str,
    patient_bsn: str | None,
    *,
    interaction: str,
    resource_id: str | None = None,
    search_params: Mapping[str, Sequence[str]] | None = None,
    categories: Iterable[str] = frozenset(),
) -> None:
    """Allow (return) or refuse (raise `Forbidden`) a pull within a referral this node sent."""
    ctx: ServiceContext = request.app.state.ctx
    ura = ctx.name.removeprefix("node-")
    base = caller.authorization_base or ""
    referral = await referral_context(ctx, ura, base)
    if referral is None:
        raise Forbidden(
            "the token's authorization base names no referral of this organisation",
            details_code="unknown-authorization-base",
        )
    pep = ctx.extras.get("authz_pep")
    if pep is None:
        settings = AuthzSettings()
        if not settings.pep_enabled:
            return  # development mode (LDN_AUTHZ_PEP_ENABLED=false): the token rules only
        pep = pep_for(ctx, settings)
    if not isinstance(pep, PolicyEnforcementPoint):
        return
    chosen = frozenset(categories)
    await pep.enforce(
        request,
        caller,
        resource_type=resource_type,
        interaction=interaction,
        patient_bsn=patient_bsn,
        patient_id=patient_id_of(resource_type, resource_id, search_params),
        resource_id=resource_id,
        categories=chosen,
        referral=referral,
        record_types=bgz_record_types(chosen) if interaction == "operation" else None,
    )
