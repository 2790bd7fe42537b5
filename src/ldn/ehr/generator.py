"""The synthetic EHR: deterministic, realistic FHIR R4 records per citizen and care provider.

Every citizen in the topology has a *clinical profile* (their conditions and allergies), drawn once
from a generator seeded by (seed, BSN), so all providers tell one coherent story: the GP treats the
diabetes, the pharmacy dispenses the metformine, the hospital sees the heart failure. Each provider
then records its own part of that story, drawn from a generator seeded by (seed, provider URA, BSN):
the same seed always gives the same resources, ids included.

What a provider holds follows its type (`Organization.type` in the topology):
- huisartspraktijk: Patient, Condition (ICPC + SNOMED + ICD-10), AllergyIntolerance,
  MedicationRequest, laboratory and vital-sign Observations, Encounter, Procedure;
- ziekenhuis (cardiology, internal medicine): the same categories, hospital diagnoses and tests;
- apotheek: Patient, MedicationRequest (prescriptions received) and MedicationStatement only;
- verpleeghuis: Patient, Condition, AllergyIntolerance, MedicationStatement, vital signs, Encounter,
  Procedure;
- ggz-instelling: Patient, Condition, MedicationRequest, Encounter, Procedure, every resource
  labelled as mental-health data (`meta.security` v3-ActCode MH and confidentiality R);
- laboratorium: Patient and laboratory Observations.

Resource ids derive from the seed, provider and BSN: fine for synthetic data, but a real EHR assigns
ids that reveal nothing, and so must any deployment that loads real records.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from ldn.core.identifiers import SYSTEM_BSN, SYSTEM_URA, SYSTEM_UZI
from ldn.core.topology import Citizen, Organization, Professional, Topology, load_topology
from ldn.ehr import codes
from ldn.ehr.codes import (
    ALLERGIES,
    CONDITIONS,
    LABS,
    MEDICATIONS,
    MENTAL_HEALTH,
    MENTAL_HEALTH_LABEL,
    PROCEDURES,
    RESTRICTED_LABEL,
    Coding,
)

if TYPE_CHECKING:
    from ldn.localization.sync import Holding

__all__ = [
    "DEFAULT_SEED",
    "REFERENCE_TIME",
    "ClinicalProfile",
    "EhrHoldings",
    "EhrResource",
    "clinical_profile",
    "data_category",
    "holdings",
    "node_resources",
    "patient_resources",
    "sensitivity",
]

DEFAULT_SEED = "ldn-synthetic-ehr-v1"
# Every date is relative to this fixed moment, never to "now": the same seed gives the same data
# on any day.
REFERENCE_TIME = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)

PATIENT_DATA_TYPES = (
    "Patient",
    "Condition",
    "AllergyIntolerance",
    "MedicationRequest",
    "MedicationStatement",
    "Observation",
    "Procedure",
    "Encounter",
)

# The NVI data category (SPEC §6) of each resource type; Observation depends on its category.
_CATEGORY_OF_TYPE = {
    "Patient": "Patient",
    "Condition": "Condition",
    "AllergyIntolerance": "AllergyIntolerance",
    "MedicationRequest": "MedicationRequest",
    "MedicationStatement": "MedicationUse",
    "Procedure": "Procedure",
    "Encounter": "Encounter",
}
_OBSERVATION_CATEGORIES = {"laboratory": "ObservationLaboratory", "vital-signs": "ObservationVitalSigns"}

_CITIES = (
    ("Utrecht", "35"),
    ("Amersfoort", "38"),
    ("Arnhem", "68"),
    ("Zeist", "37"),
    ("Nieuwegein", "34"),
    ("Houten", "39"),
)
_STREETS = ("Lindelaan", "Kerkstraat", "Dorpsstraat", "Molenweg", "Stationsweg", "Julianalaan", "Beukenlaan")


@dataclass(frozen=True)
class EhrResource:
    """One generated resource and what the store indexes about it."""

    resource: dict[str, Any]
    bsn: str
    category: str  # NVI data category
    sensitivity: str | None = None

    @property
    def resource_type(self) -> str:
        return str(self.resource["resourceType"])

    @property
    def id(self) -> str:
        return str(self.resource["id"])

    def __repr__(self) -> str:  # never a BSN in a repr
        return f"EhrResource({self.resource_type}/{self.id}, {self.category})"


@dataclass(frozen=True)
class ClinicalProfile:
    """A citizen's conditions and allergies, shared by every provider that treats them."""

    gp_conditions: tuple[str, ...] = ()
    hospital_conditions: tuple[str, ...] = ()
    nursing_conditions: tuple[str, ...] = ()
    mental_conditions: tuple[str, ...] = ()
    allergies: tuple[str, ...] = ()

    def medications_for(self, conditions: Iterable[str]) -> list[str]:
        seen: list[str] = []
        for key in conditions:
            for med in CONDITIONS[key].medications:
                if med not in seen:
                    seen.append(med)
        return seen


# ---------------------------------------------------------------------------------------- helpers


def _rng(seed: str, *parts: str) -> random.Random:
    digest = hashlib.sha256("|".join((seed, *parts)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _make_id(seed: str, ura: str, bsn: str, kind: str, n: int) -> str:
    digest = hashlib.sha256(f"{seed}|id|{ura}|{bsn}|{kind}|{n}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def _instant(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _cc(*codings: Coding, text: str | None = None) -> dict[str, Any]:
    concept: dict[str, Any] = {"coding": [{"system": s, "code": c, "display": d} for s, c, d in codings]}
    if text:
        concept["text"] = text
    return concept


def _age(citizen: Citizen, at: datetime = REFERENCE_TIME) -> int:
    born = citizen.birth_date
    today = at.date()
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def org_reference(org: Organization) -> dict[str, Any]:
    return {"type": "Organization", "identifier": {"system": SYSTEM_URA, "value": org.ura}, "display": org.name}


def practitioner_reference(prof: Professional) -> dict[str, Any]:
    return {
        "type": "Practitioner",
        "identifier": {"system": SYSTEM_UZI, "value": prof.uzi},
        "display": prof.display_name,
    }


def _pick_professional(org: Organization, preferred_roles: Sequence[str]) -> Professional | None:
    for role in preferred_roles:
        for prof in org.professionals:
            if prof.role_code == role:
                return prof
    return org.professionals[0] if org.professionals else None


# Who records what, by role code: physicians first, then nurses.
_PRESCRIBER_ROLES = ("01.015", "01.016", "01.010", "01.035", "16.000", "17.000")


# ---------------------------------------------------------------------------------------- profile


def clinical_profile(topology: Topology, citizen: Citizen, seed: str = DEFAULT_SEED) -> ClinicalProfile:
    """The citizen's conditions and allergies, drawn once and shared by all their providers."""
    rng = _rng(seed, "profile", citizen.bsn)
    age = _age(citizen)
    types = {topology.organization(u).type for u in citizen.providers}

    def draw(candidates: Sequence[tuple[str, float]], fallback: str) -> tuple[str, ...]:
        chosen = tuple(key for key, p in candidates if rng.random() < p)
        return chosen or (fallback,)

    gp: tuple[str, ...] = ()
    if types & {"huisartspraktijk", "apotheek", "laboratorium", "verpleeghuis"}:
        if age >= 45:
            gp = draw(
                [
                    ("diabetes-type-2", 0.35),
                    ("hypertension", 0.55),
                    ("hypercholesterolemia", 0.4),
                    ("copd", 0.2 if age >= 55 else 0.0),
                    ("osteoarthritis-knee", 0.3 if age >= 55 else 0.05),
                    ("hypothyroidism", 0.1),
                ],
                "hypertension",
            )
        else:
            gp = draw([("asthma", 0.35), ("hypothyroidism", 0.15), ("hypertension", 0.1)], "asthma")
    hospital: tuple[str, ...] = ()
    if "ziekenhuis" in types:
        if age >= 50:
            renal = 0.45 if ("diabetes-type-2" in gp or "hypertension" in gp) else 0.05
            hospital = draw(
                [
                    ("heart-failure", 0.3),
                    ("atrial-fibrillation", 0.35),
                    ("coronary-artery-disease", 0.35),
                    ("chronic-kidney-disease", renal),
                    ("anemia", 0.2),
                ],
                "atrial-fibrillation",
            )
        else:
            hospital = draw([("anemia", 0.5), ("atrial-fibrillation", 0.2)], "anemia")
    nursing: tuple[str, ...] = ()
    if "verpleeghuis" in types:
        nursing = draw([("alzheimer", 0.6), ("stroke", 0.4), ("parkinson", 0.2), ("pressure-ulcer", 0.3)], "alzheimer")
    mental: tuple[str, ...] = ()
    if "ggz-instelling" in types:
        mental = tuple(rng.sample(codes.MENTAL_HEALTH_CONDITIONS, rng.choice((1, 1, 2))))
    allergy_count = rng.choices((0, 1, 2), weights=(50, 35, 15))[0]
    allergies = tuple(rng.sample(sorted(ALLERGIES), allergy_count))
    return ClinicalProfile(gp, hospital, nursing, mental, allergies)


# ---------------------------------------------------------------------------------------- builder


@dataclass
class _Builder:
    """Builds one provider's resources about one citizen."""

    topology: Topology
    citizen: Citizen
    org: Organization
    profile: ClinicalProfile
    seed: str
    rng: random.Random
    resources: list[EhrResource] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)
    patient_id: str = ""
    condition_ids: dict[str, str] = field(default_factory=dict)

    @property
    def labelled(self) -> bool:
        return self.org.type == "ggz-instelling"

    def new_id(self, kind: str) -> str:
        n = self.counters.get(kind, 0)
        self.counters[kind] = n + 1
        return _make_id(self.seed, self.org.ura, self.citizen.bsn, kind, n)

    def days_ago(self, low: int, high: int) -> datetime:
        moment = REFERENCE_TIME - timedelta(days=self.rng.randint(low, high), minutes=self.rng.randint(0, 480))
        return max(moment, datetime.combine(self.citizen.birth_date, datetime.min.time(), UTC) + timedelta(days=1))

    def subject(self) -> dict[str, Any]:
        return {"reference": f"Patient/{self.patient_id}", "display": self.citizen_name}

    @property
    def citizen_name(self) -> str:
        return f"{self.citizen.given_name} {self.citizen.family_name}"

    def professional(self, roles: Sequence[str] = _PRESCRIBER_ROLES) -> dict[str, Any] | None:
        prof = _pick_professional(self.org, roles)
        return practitioner_reference(prof) if prof else None

    def add(
        self, resource: dict[str, Any], last_updated: datetime, category: str, *, profile: str | None = None
    ) -> None:
        meta: dict[str, Any] = {"versionId": "1", "lastUpdated": _instant(last_updated)}
        if profile:
            meta["profile"] = [profile]
        if self.labelled:
            meta["security"] = [dict(MENTAL_HEALTH_LABEL), dict(RESTRICTED_LABEL)]
        ordered = {"resourceType": resource.pop("resourceType"), "id": resource.pop("id"), "meta": meta, **resource}
        self.resources.append(
            EhrResource(ordered, self.citizen.bsn, category, MENTAL_HEALTH if self.labelled else None)
        )

    # --- resources ---------------------------------------------------------------------------

    def patient(self) -> None:
        c = self.citizen
        home = _rng(self.seed, "address", c.bsn)  # one address for all providers
        city, postcode_prefix = home.choice(_CITIES)
        letters = home.choice("ABCDEFGHJKLMNPRSTVWXZ") + home.choice("ABCEGHJKLNPRSTVX")
        postcode = f"{postcode_prefix}{home.randint(10, 99)} {letters}"
        phone = f"06{home.randint(10_000_000, 99_999_999)}"
        self.patient_id = self.new_id("Patient")
        resource: dict[str, Any] = {
            "resourceType": "Patient",
            "id": self.patient_id,
            "identifier": [{"system": SYSTEM_BSN, "value": c.bsn}],
            "active": True,
            "name": [
                {
                    "use": "official",
                    "text": self.citizen_name,
                    "family": c.family_name,
                    "given": [c.given_name],
                }
            ],
            "telecom": [{"system": "phone", "value": phone, "use": "mobile"}],
            "gender": c.gender,
            "birthDate": c.birth_date.isoformat(),
            "address": [
                {
                    "use": "home",
                    "line": [f"{home.choice(_STREETS)} {home.randint(1, 180)}"],
                    "city": city,
                    "postalCode": postcode,
                    "country": "NL",
                }
            ],
            "managingOrganization": org_reference(self.org),
        }
        gp = next(
            (
                self.topology.organization(u)
                for u in c.providers
                if self.topology.organization(u).type == "huisartspraktijk"
            ),
            None,
        )
        if gp is not None:
            resource["generalPractitioner"] = [org_reference(gp)]
        self.add(resource, self.days_ago(900, 2400), "Patient")

    def condition(self, key: str) -> None:
        code = CONDITIONS[key]
        codings = [code.snomed, code.icd10] + (
            [code.icpc] if (code.icpc and self.org.type == "huisartspraktijk") else []
        )
        age_days = (REFERENCE_TIME.date() - self.citizen.birth_date).days
        onset = self.days_ago(200, max(201, min(age_days - 365 * 5, 365 * 15)))
        recorded = onset + timedelta(days=self.rng.randint(0, 30))
        resource: dict[str, Any] = {
            "resourceType": "Condition",
            "id": self.new_id("Condition"),
            "clinicalStatus": _cc((codes.CONDITION_CLINICAL, "active", "Active")),
            "verificationStatus": _cc((codes.CONDITION_VERIFICATION, "confirmed", "Confirmed")),
            "category": [_cc((codes.CONDITION_CATEGORY, "problem-list-item", "Problem List Item"))],
            "code": _cc(*codings, text=code.display_nl),
            "subject": self.subject(),
            "onsetDateTime": _instant(onset),
            "recordedDate": _instant(recorded),
        }
        who = self.professional()
        if who:
            resource["asserter"] = who
        self.condition_ids[key] = resource["id"]
        self.add(resource, recorded, "Condition")

    def allergy(self, key: str) -> None:
        substance, category, criticality, manifestation = ALLERGIES[key]
        recorded = self.days_ago(300, 3000)
        resource: dict[str, Any] = {
            "resourceType": "AllergyIntolerance",
            "id": self.new_id("AllergyIntolerance"),
            "clinicalStatus": _cc((codes.ALLERGY_CLINICAL, "active", "Active")),
            "verificationStatus": _cc((codes.ALLERGY_VERIFICATION, "confirmed", "Confirmed")),
            "type": "allergy",
            "category": [category],
            "criticality": criticality,
            "code": _cc(substance),
            "patient": self.subject(),
            "recordedDate": _instant(recorded),
            "reaction": [
                {
                    "manifestation": [_cc(manifestation)],
                    "severity": "severe" if criticality == "high" else "mild",
                }
            ],
        }
        who = self.professional()
        if who:
            resource["recorder"] = who
        self.add(resource, recorded, "AllergyIntolerance")

    def _dosage(self, key: str) -> dict[str, Any]:
        med = MEDICATIONS[key]
        return {
            "text": med.dose,
            "timing": {"repeat": {"frequency": med.frequency, "period": 1, "periodUnit": med.period_unit}},
            "route": _cc(med.route),
            "doseAndRate": [{"doseQuantity": {"value": med.dose_value, "unit": med.dose_unit}}],
        }

    def medication_request(self, key: str, prescriber: Organization, reason: str | None = None) -> datetime:
        med = MEDICATIONS[key]
        authored = self.days_ago(20, 400)
        resource: dict[str, Any] = {
            "resourceType": "MedicationRequest",
            "id": self.new_id("MedicationRequest"),
            "status": "active",
            "intent": "order",
            "category": [_cc(codes.BGZ_MEDICATION_AGREEMENT_CATEGORY)],
            "medicationCodeableConcept": _cc(med.atc, text=med.display_nl),
            "subject": self.subject(),
            "authoredOn": _instant(authored),
            "dosageInstruction": [self._dosage(key)],
            "dispenseRequest": {
                "validityPeriod": {"start": _instant(authored), "end": _instant(authored + timedelta(days=365))}
            },
        }
        prof = _pick_professional(prescriber, _PRESCRIBER_ROLES)
        resource["requester"] = practitioner_reference(prof) if prof else org_reference(prescriber)
        if reason and reason in self.condition_ids:
            resource["reasonReference"] = [{"reference": f"Condition/{self.condition_ids[reason]}"}]
        elif reason:
            resource["reasonCode"] = [_cc(CONDITIONS[reason].snomed)]
        self.add(resource, authored, "MedicationRequest")
        return authored

    def medication_statement(self, key: str) -> None:
        med = MEDICATIONS[key]
        start = self.days_ago(60, 900)
        asserted = start + timedelta(days=self.rng.randint(1, 50))
        resource: dict[str, Any] = {
            "resourceType": "MedicationStatement",
            "id": self.new_id("MedicationStatement"),
            "status": "active",
            "category": _cc(codes.BGZ_MEDICATION_USE_CATEGORY),
            "medicationCodeableConcept": _cc(med.atc, text=med.display_nl),
            "subject": self.subject(),
            "effectivePeriod": {"start": _instant(start)},
            "dateAsserted": _instant(asserted),
            "informationSource": org_reference(self.org),
            "dosage": [self._dosage(key)],
        }
        self.add(resource, asserted, "MedicationUse")

    def lab(self, key: str, when: datetime) -> None:
        test = LABS[key]
        low, high = test.typical
        value = round(self.rng.uniform(low, high), test.decimals)
        if test.decimals == 0:
            value = float(int(value))
        issued = when + timedelta(hours=self.rng.randint(2, 30))
        quantity = {"value": value, "unit": test.unit, "system": codes.UCUM, "code": test.unit}
        resource: dict[str, Any] = {
            "resourceType": "Observation",
            "id": self.new_id("Observation"),
            "status": "final",
            "category": [
                _cc((codes.OBSERVATION_CATEGORY, "laboratory", "Laboratory")),
                _cc(codes.BGZ_LAB_CATEGORY),
            ],
            "code": _cc(test.loinc),
            "subject": self.subject(),
            "effectiveDateTime": _instant(when),
            "issued": _instant(issued),
            "performer": [org_reference(self.org)],
            "valueQuantity": quantity,
            "referenceRange": [
                {
                    "low": {**quantity, "value": test.low},
                    "high": {**quantity, "value": test.high},
                }
            ],
        }
        if value > test.high or value < test.low:
            flag = ("H", "High") if value > test.high else ("L", "Low")
            resource["interpretation"] = [_cc((codes.INTERPRETATION, *flag))]
        self.add(resource, issued, "ObservationLaboratory")

    def _vital(self, code: Coding, when: datetime, profile: str, value: dict[str, Any]) -> None:
        resource: dict[str, Any] = {
            "resourceType": "Observation",
            "id": self.new_id("Observation"),
            "status": "final",
            "category": [_cc((codes.OBSERVATION_CATEGORY, "vital-signs", "Vital Signs"))],
            "code": _cc(code),
            "subject": self.subject(),
            "effectiveDateTime": _instant(when),
            "performer": [self.professional(("30.000", *_PRESCRIBER_ROLES)) or org_reference(self.org)],
            **value,
        }
        self.add(resource, when, "ObservationVitalSigns", profile=profile)

    def vitals(self, when: datetime, *, weight: bool = True, heart_rate: bool = True) -> None:
        hypertensive = "hypertension" in self.profile.gp_conditions
        systolic = self.rng.randint(135, 168) if hypertensive else self.rng.randint(112, 142)
        diastolic = self.rng.randint(78, 98) if hypertensive else self.rng.randint(66, 88)

        def mmhg(v: int) -> dict[str, Any]:
            return {"value": v, "unit": "mmHg", "system": codes.UCUM, "code": "mm[Hg]"}

        self._vital(
            codes.VITAL_BLOOD_PRESSURE,
            when,
            "http://hl7.org/fhir/StructureDefinition/bp",
            {
                "component": [
                    {"code": _cc(codes.VITAL_SYSTOLIC), "valueQuantity": mmhg(systolic)},
                    {"code": _cc(codes.VITAL_DIASTOLIC), "valueQuantity": mmhg(diastolic)},
                ]
            },
        )
        if weight:
            base = 58.0 if self.citizen.gender == "female" else 72.0
            kg = round(base + self.rng.uniform(0, 30), 1)
            self._vital(
                codes.VITAL_BODY_WEIGHT,
                when,
                "http://hl7.org/fhir/StructureDefinition/bodyweight",
                {"valueQuantity": {"value": kg, "unit": "kg", "system": codes.UCUM, "code": "kg"}},
            )
        if heart_rate:
            bpm = self.rng.randint(56, 96)
            self._vital(
                codes.VITAL_HEART_RATE,
                when,
                "http://hl7.org/fhir/StructureDefinition/heartrate",
                {"valueQuantity": {"value": bpm, "unit": "/min", "system": codes.UCUM, "code": "/min"}},
            )

    def encounter(
        self, start: datetime, *, cls: str, kind: Coding, hours: float | None = 0.25, reasons: Sequence[str] = ()
    ) -> None:
        """An encounter of `hours`; None means still going on (a nursing-home stay)."""
        end = start + timedelta(hours=hours) if hours is not None else start + timedelta(days=1)
        period = {"start": _instant(start)}
        if hours is not None:
            period["end"] = _instant(end)
        resource: dict[str, Any] = {
            "resourceType": "Encounter",
            "id": self.new_id("Encounter"),
            "status": "finished" if hours is not None else "in-progress",
            "class": {"system": codes.ACT_CODE, "code": cls, "display": codes.ENCOUNTER_CLASSES[cls]},
            "type": [_cc(kind)],
            "subject": self.subject(),
            "period": period,
            "serviceProvider": org_reference(self.org),
        }
        who = self.professional()
        if who:
            resource["participant"] = [{"individual": who}]
        refs = [{"reference": f"Condition/{self.condition_ids[r]}"} for r in reasons if r in self.condition_ids]
        if refs:
            resource["reasonReference"] = refs
        self.add(resource, min(end, REFERENCE_TIME), "Encounter")

    def procedure(self, key: str, reason: str | None = None) -> None:
        proc = PROCEDURES[key]
        when = self.days_ago(30, 700)
        resource: dict[str, Any] = {
            "resourceType": "Procedure",
            "id": self.new_id("Procedure"),
            "status": "completed",
            "code": _cc(proc.snomed, text=proc.display_nl),
            "subject": self.subject(),
            "performedDateTime": _instant(when),
        }
        category = _PROCEDURE_CATEGORY.get(key)
        if category:
            resource["category"] = _cc(category)
        who = self.professional()
        if who:
            resource["performer"] = [{"actor": who}]
        if reason and reason in self.condition_ids:
            resource["reasonReference"] = [{"reference": f"Condition/{self.condition_ids[reason]}"}]
        self.add(resource, when, "Procedure")


# Procedure categories from the R4 example value set (procedure-category, SNOMED CT).
_DIAGNOSTIC = (codes.SNOMED, "103693007", "Diagnostic procedure")
_PROCEDURE_CATEGORY: dict[str, Coding] = {
    "ecg": _DIAGNOSTIC,
    "spirometry": _DIAGNOSTIC,
    "echocardiography": _DIAGNOSTIC,
    "coronary-angiography": _DIAGNOSTIC,
    "colonoscopy": _DIAGNOSTIC,
    "pci": (codes.SNOMED, "387713003", "Surgical procedure"),
    "cbt": (codes.SNOMED, "24642003", "Psychiatry procedure or service"),
    "psychotherapy": (codes.SNOMED, "24642003", "Psychiatry procedure or service"),
}


# ---------------------------------------------------------------------------------------- per type


def _procedures_for(conditions: Sequence[str]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for key in conditions:
        for proc in CONDITIONS[key].procedures:
            if proc not in [p for p, _ in out]:
                out.append((proc, key))
    return out


def _labs_for(conditions: Sequence[str]) -> list[str]:
    out: list[str] = []
    for key in conditions:
        for lab in CONDITIONS[key].labs:
            if lab not in out:
                out.append(lab)
    return out


def _rounds(b: _Builder, count: int, spacing_days: int) -> list[datetime]:
    """Visit moments, newest first, about `spacing_days` apart."""
    return [
        REFERENCE_TIME
        - timedelta(days=k * spacing_days + b.rng.randint(3, spacing_days // 3), hours=b.rng.randint(0, 6))
        for k in range(count)
    ]


def _general_practice(b: _Builder) -> None:
    conditions = b.profile.gp_conditions
    for key in conditions:
        b.condition(key)
    for key in b.profile.allergies:
        b.allergy(key)
    for med in b.profile.medications_for(conditions):
        reason = next(k for k in conditions if med in CONDITIONS[k].medications)
        b.medication_request(med, b.org, reason)
    rounds = _rounds(b, 3, 180)
    for i, when in enumerate(rounds):
        for lab in _labs_for(conditions):
            b.lab(lab, when)
        b.vitals(when, weight=i < 2, heart_rate=i < 2)
        kind = codes.ENCOUNTER_CONSULTATION if i == len(rounds) - 1 else codes.ENCOUNTER_FOLLOW_UP
        b.encounter(when, cls="AMB", kind=kind, reasons=conditions[:2])
    for proc, reason in _procedures_for(conditions):
        b.procedure(proc, reason)


def _hospital(b: _Builder) -> None:
    conditions = b.profile.hospital_conditions
    for key in conditions:
        b.condition(key)
    for key in b.profile.allergies:
        b.allergy(key)
    for med in b.profile.medications_for(conditions):
        reason = next(k for k in conditions if med in CONDITIONS[k].medications)
        b.medication_request(med, b.org, reason)
    rounds = _rounds(b, 2, 120)
    for when in rounds:
        for lab in _labs_for(conditions):
            b.lab(lab, when)
        b.vitals(when, weight=when == rounds[0])
        b.encounter(when, cls="AMB", kind=codes.ENCOUNTER_FOLLOW_UP, hours=0.5, reasons=conditions)
    if {"heart-failure", "coronary-artery-disease"} & set(conditions):
        admitted = b.days_ago(250, 600)
        b.encounter(
            admitted, cls="IMP", kind=codes.ENCOUNTER_ADMISSION, hours=24 * b.rng.randint(2, 6), reasons=conditions
        )
    for proc, reason in _procedures_for(conditions):
        b.procedure(proc, reason)


def _pharmacy(b: _Builder) -> None:
    # The pharmacy holds the prescriptions it received and the medication use it knows, nothing else.
    prescribers: list[tuple[Sequence[str], Organization]] = []
    for ura in b.citizen.providers:
        org = b.topology.organization(ura)
        if org.type == "huisartspraktijk":
            prescribers.append((b.profile.gp_conditions, org))
        elif org.type == "ziekenhuis":
            prescribers.append((b.profile.hospital_conditions, org))
        elif org.type == "ggz-instelling":
            prescribers.append((b.profile.mental_conditions, org))
        elif org.type == "verpleeghuis":
            prescribers.append((b.profile.nursing_conditions, org))
    if not prescribers:  # a patient without a known prescriber still has their GP's medication
        prescribers.append((b.profile.gp_conditions, b.org))
    dispensed: list[str] = []
    for conditions, org in prescribers:
        for med in b.profile.medications_for(conditions):
            if med in dispensed:
                continue
            dispensed.append(med)
            reason = next(k for k in conditions if med in CONDITIONS[k].medications)
            b.medication_request(med, org, reason)
            b.medication_statement(med)


def _nursing_home(b: _Builder) -> None:
    conditions = b.profile.nursing_conditions
    for key in conditions:
        b.condition(key)
    for key in b.profile.allergies:
        b.allergy(key)
    # The nursing home administers everything the resident uses.
    every = (*b.profile.gp_conditions, *b.profile.hospital_conditions, *conditions)
    for med in b.profile.medications_for(every):
        b.medication_statement(med)
    for when in _rounds(b, 3, 30):
        b.vitals(when, weight=True, heart_rate=True)
    b.encounter(b.days_ago(400, 900), cls="NONAC", kind=codes.ENCOUNTER_ADMISSION, hours=None, reasons=conditions)
    for proc, reason in _procedures_for(conditions):
        b.procedure(proc, reason)


def _mental_health(b: _Builder) -> None:
    conditions = b.profile.mental_conditions
    for key in conditions:
        b.condition(key)
    for med in b.profile.medications_for(conditions):
        reason = next(k for k in conditions if med in CONDITIONS[k].medications)
        b.medication_request(med, b.org, reason)
    sessions = b.rng.randint(3, 5)
    for when in _rounds(b, sessions, 21):
        b.encounter(when, cls="AMB", kind=codes.ENCOUNTER_PSYCHOTHERAPY, hours=0.75, reasons=conditions)
    for proc, reason in _procedures_for(conditions):
        b.procedure(proc, reason)


def _laboratory(b: _Builder) -> None:
    for when in _rounds(b, 2, 150):
        for lab in _labs_for((*b.profile.gp_conditions, *b.profile.hospital_conditions)) or ["hemoglobin"]:
            b.lab(lab, when)


_BY_TYPE = {
    "huisartspraktijk": _general_practice,
    "ziekenhuis": _hospital,
    "apotheek": _pharmacy,
    "verpleeghuis": _nursing_home,
    "ggz-instelling": _mental_health,
    "laboratorium": _laboratory,
}


# ---------------------------------------------------------------------------------------- public


def patient_resources(topology: Topology, citizen: Citizen, ura: str, *, seed: str = DEFAULT_SEED) -> list[EhrResource]:
    """What provider `ura` holds about `citizen`: the Patient first, then the clinical resources.

    Empty when the citizen is not the provider's patient (`Citizen.providers`)."""
    if ura not in citizen.providers:
        return []
    org = topology.organization(ura)
    builder = _Builder(
        topology=topology,
        citizen=citizen,
        org=org,
        profile=clinical_profile(topology, citizen, seed),
        seed=seed,
        rng=_rng(seed, "record", ura, citizen.bsn),
    )
    builder.patient()
    fill = _BY_TYPE.get(org.type)
    if fill is not None:
        fill(builder)
    return builder.resources


def node_resources(topology: Topology, ura: str, *, seed: str = DEFAULT_SEED) -> list[EhrResource]:
    """Everything provider `ura` holds, patient by patient in topology order."""
    out: list[EhrResource] = []
    for citizen in topology.citizens:
        out.extend(patient_resources(topology, citizen, ura, seed=seed))
    return out


def data_category(resource: dict[str, Any]) -> str:
    """The NVI data category (SPEC §6) of a resource; ValueError for a type without one."""
    rtype = resource.get("resourceType")
    if rtype == "Observation":
        for concept in resource.get("category") or []:
            for coding in concept.get("coding") or []:
                if coding.get("system") == codes.OBSERVATION_CATEGORY and coding.get("code") in _OBSERVATION_CATEGORIES:
                    return _OBSERVATION_CATEGORIES[coding["code"]]
        raise ValueError("Observation without a laboratory or vital-signs category")
    try:
        return _CATEGORY_OF_TYPE[str(rtype)]
    except KeyError:
        raise ValueError(f"no data category for {str(rtype)[:64]}") from None


def sensitivity(resource: dict[str, Any]) -> str | None:
    """`mental-health` when the resource carries the MH security label, else None."""
    for label in (resource.get("meta") or {}).get("security") or []:
        if label.get("system") == MENTAL_HEALTH_LABEL["system"] and label.get("code") == MENTAL_HEALTH_LABEL["code"]:
            return MENTAL_HEALTH
    return None


@lru_cache(maxsize=1)
def _default_topology() -> Topology:
    return load_topology()


def holdings(ura: str, topology: Topology | None = None, *, seed: str = DEFAULT_SEED) -> dict[str, set[str]]:
    """BSN -> the NVI data categories provider `ura` holds about that patient (for the NVI sync)."""
    topo = topology if topology is not None else _default_topology()
    out: dict[str, set[str]] = {}
    for item in node_resources(topo, ura, seed=seed):
        out.setdefault(item.bsn, set()).add(item.category)
    return out


class EhrHoldings:
    """The synthetic EHR as a `ldn.localization.sync.HoldingsSource` for one provider."""

    def __init__(self, topology: Topology, ura: str, *, seed: str = DEFAULT_SEED) -> None:
        self.topology = topology
        self.ura = ura
        self.seed = seed

    async def holdings(self) -> AsyncIterator[Holding]:
        from ldn.localization.sync import Holding

        for bsn, categories in holdings(self.ura, self.topology, seed=self.seed).items():
            yield Holding(bsn, frozenset(categories))
