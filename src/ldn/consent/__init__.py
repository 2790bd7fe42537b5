"""Consent (toestemming) and EHDS opt-out: the Mitz-style decision core, FHIR and XACML forms.

Pure code, no I/O: `model` (choices), `categories` (code tables), `decision` (closed and open
question), `fhir` (FHIR R4 Consent), `xacml` (the Mitz SOAP/XACML closed question).
"""

from ldn.consent.categories import DataCategory
from ldn.consent.decision import ClosedQuestion, Decision, OptOut, Result, decide, permitted_for
from ldn.consent.model import ChoiceDecision, ChoiceSource, ConsentChoice, Party, PartyKind

__all__ = [
    "ChoiceDecision",
    "ChoiceSource",
    "ClosedQuestion",
    "ConsentChoice",
    "DataCategory",
    "Decision",
    "OptOut",
    "Party",
    "PartyKind",
    "Result",
    "decide",
    "permitted_for",
]
