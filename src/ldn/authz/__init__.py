"""Authorization (generic function): Rego policies in ``policies/`` and the decision point over them.

``model`` (the SPEC §8 input model and the Decision), ``pdp`` (PolicyDecisionPoint, DecisionCache)
and ``rego_tests`` (runs the policies' own Rego unit tests). Exports load lazily so the Rego test
runner's child process does not pay for pydantic.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ldn.authz.model import AuthzInput, Decision, Explanation
    from ldn.authz.pdp import DecisionCache, PolicyDecisionPoint, PolicyLoadError

__all__ = ["AuthzInput", "Decision", "DecisionCache", "Explanation", "PolicyDecisionPoint", "PolicyLoadError"]

_HOME = {
    "AuthzInput": "ldn.authz.model",
    "Decision": "ldn.authz.model",
    "Explanation": "ldn.authz.model",
    "DecisionCache": "ldn.authz.pdp",
    "PolicyDecisionPoint": "ldn.authz.pdp",
    "PolicyLoadError": "ldn.authz.pdp",
}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(_HOME[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
