"""Code tables of the synthetic EHR: conditions, medication, laboratory tests, vital signs, procedures.

Code systems are the ones Dutch FHIR exchanges use: SNOMED CT for clinical findings and procedures,
ICD-10 (WHO) for hospital and mental-health diagnoses, ICPC-1-NL for the GP's episodes (the NHG
table), ATC for medication (the G-Standaard classifies every product by ATC; ldn does not invent
G-Standaard article numbers it cannot check), LOINC and UCUM for laboratory results and vital signs.
The zib-profile canonicals and BgZ category codes come from the Nictiz STU3 BgZ 2017 material
(Nictiz/Nictiz-STU3: capabilitystatement-server-bgz2017 and the BgZ example batch).

Everything here is reference data: immutable, and shared by the generator and the BgZ renderer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol

SNOMED = "http://snomed.info/sct"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
ICPC = "http://hl7.org/fhir/sid/icpc-1-nl"
ATC = "http://www.whocc.no/atc"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"

OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
ALLERGY_CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
ALLERGY_VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
ROUTE_OF_ADMINISTRATION = "urn:oid:2.16.840.1.113883.2.4.4.9"  # G-Standaard thesaurus 0007 (toedieningsweg)

# BgZ 2017 category codes (Nictiz BgZ example batch): what a BgZ query asks for.
BGZ_LAB_CATEGORY = (SNOMED, "275711006", "Chemistry procedure")
BGZ_MEDICATION_AGREEMENT_CATEGORY = (SNOMED, "16076005", "Prescription")
BGZ_MEDICATION_USE_CATEGORY = ("urn:oid:2.16.840.1.113883.2.4.3.11.60.20.77.5.3", "6", "Medicatiegebruik")

# Security labels of mental-health (GGZ) data: HL7 v3 ActCode "MH" (mental health information
# sensitivity) and confidentiality "R" (restricted). A policy tells GGZ data by the MH label.
MENTAL_HEALTH_LABEL = {"system": ACT_CODE, "code": "MH", "display": "mental health information sensitivity"}
RESTRICTED_LABEL = {"system": CONFIDENTIALITY, "code": "R", "display": "restricted"}
MENTAL_HEALTH = "mental-health"

Coding = tuple[str, str, str]  # (system, code, display)


class _Keyed(Protocol):
    @property
    def key(self) -> str: ...


@dataclass(frozen=True)
class ConditionCode:
    """A diagnosis as the Dutch sources code it, with the medication, tests and procedures it brings."""

    key: str
    display_nl: str
    snomed: Coding
    icd10: Coding
    icpc: Coding | None = None
    medications: tuple[str, ...] = ()
    labs: tuple[str, ...] = ()
    procedures: tuple[str, ...] = ()
    mental_health: bool = False


@dataclass(frozen=True)
class MedicationCode:
    key: str
    display_nl: str  # product-level name as a Dutch prescription shows it
    atc: Coding
    dose: str  # dosage text (Dutch)
    frequency: int  # times per period
    period_unit: str  # UCUM period unit: "d" or "wk"
    dose_value: float
    dose_unit: str  # unit of the dose quantity: tablet, puff, ...
    route: Coding = (ROUTE_OF_ADMINISTRATION, "9", "Oraal")


@dataclass(frozen=True)
class LabTest:
    key: str
    loinc: Coding
    unit: str  # UCUM
    low: float
    high: float
    decimals: int
    typical: tuple[float, float]  # range the generator draws values from


@dataclass(frozen=True)
class ProcedureCode:
    key: str
    snomed: Coding
    display_nl: str


def _table(items: tuple[_Keyed, ...]) -> Mapping[str, Any]:
    return MappingProxyType({i.key: i for i in items})


CONDITIONS: Mapping[str, ConditionCode] = _table(
    (
        # --- general practice: chronic conditions (NHG standards), coded ICPC + SNOMED + ICD-10
        ConditionCode(
            "diabetes-type-2",
            "Diabetes mellitus type 2",
            (SNOMED, "44054006", "Diabetes mellitus type 2"),
            (ICD10, "E11.9", "Type 2 diabetes mellitus without complications"),
            (ICPC, "T90.02", "Diabetes mellitus type 2"),
            medications=("metformine", "gliclazide"),
            labs=("hba1c", "glucose", "egfr", "creatinine", "ldl"),
        ),
        ConditionCode(
            "hypertension",
            "Hypertensie",
            (SNOMED, "38341003", "Hypertensive disorder"),
            (ICD10, "I10", "Essential (primary) hypertension"),
            (ICPC, "K86", "Hypertensie zonder orgaanbeschadiging"),
            medications=("lisinopril", "amlodipine", "hydrochloorthiazide"),
            labs=("potassium", "sodium", "creatinine", "egfr"),
            procedures=("ecg",),
        ),
        ConditionCode(
            "hypercholesterolemia",
            "Hypercholesterolemie",
            (SNOMED, "13644009", "Hypercholesterolemia"),
            (ICD10, "E78.0", "Pure hypercholesterolaemia"),
            (ICPC, "T93", "Vetstofwisselingsstoornis"),
            medications=("simvastatine",),
            labs=("cholesterol", "ldl"),
        ),
        ConditionCode(
            "copd",
            "COPD",
            (SNOMED, "13645005", "Chronic obstructive lung disease"),
            (ICD10, "J44.9", "Chronic obstructive pulmonary disease, unspecified"),
            (ICPC, "R95", "Emfyseem/COPD"),
            medications=("tiotropium", "salbutamol"),
            procedures=("spirometry",),
        ),
        ConditionCode(
            "asthma",
            "Astma",
            (SNOMED, "195967001", "Asthma"),
            (ICD10, "J45.9", "Asthma, unspecified"),
            (ICPC, "R96", "Astma"),
            medications=("salbutamol", "fluticason-salmeterol"),
            procedures=("spirometry",),
        ),
        ConditionCode(
            "hypothyroidism",
            "Hypothyreoïdie",
            (SNOMED, "40930008", "Hypothyroidism"),
            (ICD10, "E03.9", "Hypothyroidism, unspecified"),
            (ICPC, "T86", "Hypothyreoïdie/myxoedeem"),
            medications=("levothyroxine",),
            labs=("tsh",),
        ),
        ConditionCode(
            "osteoarthritis-knee",
            "Artrose knie",
            (SNOMED, "239873007", "Osteoarthritis of knee"),
            (ICD10, "M17.9", "Gonarthrosis, unspecified"),
            (ICPC, "L90", "Artrose knie"),
            medications=("paracetamol",),
        ),
        # --- hospital: cardiology and internal medicine
        ConditionCode(
            "heart-failure",
            "Hartfalen",
            (SNOMED, "84114007", "Heart failure"),
            (ICD10, "I50.9", "Heart failure, unspecified"),
            (ICPC, "K77", "Decompensatio cordis"),
            medications=("furosemide", "bisoprolol", "spironolacton"),
            labs=("nt-probnp", "potassium", "sodium", "creatinine", "egfr"),
            procedures=("echocardiography",),
        ),
        ConditionCode(
            "atrial-fibrillation",
            "Atriumfibrilleren",
            (SNOMED, "49436004", "Atrial fibrillation"),
            (ICD10, "I48.9", "Atrial fibrillation and atrial flutter, unspecified"),
            (ICPC, "K78", "Atriumfibrilleren/-flutter"),
            medications=("apixaban", "metoprolol"),
            labs=("tsh", "hemoglobin", "creatinine"),
            procedures=("ecg", "cardioversion"),
        ),
        ConditionCode(
            "coronary-artery-disease",
            "Coronairlijden",
            (SNOMED, "53741008", "Coronary arteriosclerosis"),
            (ICD10, "I25.1", "Atherosclerotic heart disease"),
            (ICPC, "K76", "Andere/chronische ischemische hartziekte"),
            medications=("carbasalaatcalcium", "atorvastatine", "metoprolol"),
            labs=("troponin", "ldl", "hemoglobin"),
            procedures=("coronary-angiography", "pci"),
        ),
        ConditionCode(
            "chronic-kidney-disease",
            "Chronische nierschade stadium 3",
            (SNOMED, "433144002", "Chronic kidney disease stage 3"),
            (ICD10, "N18.3", "Chronic kidney disease, stage 3"),
            (ICPC, "U99.01", "Nierinsufficiëntie"),
            medications=("losartan",),
            labs=("creatinine", "egfr", "potassium", "hemoglobin"),
        ),
        ConditionCode(
            "anemia",
            "Anemie",
            (SNOMED, "271737000", "Anemia"),
            (ICD10, "D64.9", "Anaemia, unspecified"),
            (ICPC, "B82", "Andere/niet gespecificeerde anemie"),
            medications=("ferrofumaraat",),
            labs=("hemoglobin",),
            procedures=("colonoscopy",),
        ),
        # --- nursing home (specialist ouderengeneeskunde)
        ConditionCode(
            "alzheimer",
            "Ziekte van Alzheimer",
            (SNOMED, "26929004", "Alzheimer's disease"),
            (ICD10, "G30.9", "Alzheimer disease, unspecified"),
            (ICPC, "P70", "Dementie"),
            medications=("donepezil",),
        ),
        ConditionCode(
            "stroke",
            "Status na CVA",
            (SNOMED, "230690007", "Cerebrovascular accident"),
            (ICD10, "I64", "Stroke, not specified as haemorrhage or infarction"),
            (ICPC, "K90", "Cerebrovasculair accident"),
            medications=("carbasalaatcalcium", "atorvastatine"),
        ),
        ConditionCode(
            "parkinson",
            "Ziekte van Parkinson",
            (SNOMED, "49049000", "Parkinson's disease"),
            (ICD10, "G20", "Parkinson disease"),
            (ICPC, "N87", "Parkinsonisme"),
            medications=("levodopa-carbidopa",),
        ),
        ConditionCode(
            "pressure-ulcer",
            "Decubitus",
            (SNOMED, "399912005", "Pressure injury"),
            (ICD10, "L89.9", "Decubitus ulcer and pressure area, unspecified"),
            (ICPC, "S97", "Chronisch ulcus huid/decubitus"),
            procedures=("wound-care",),
        ),
        # --- mental-health care (GGZ): labelled, so policies can keep it from whom it does not concern
        ConditionCode(
            "depression",
            "Depressieve episode, matig",
            (SNOMED, "832007", "Moderate major depression"),
            (ICD10, "F32.1", "Moderate depressive episode"),
            medications=("sertraline",),
            procedures=("cbt",),
            mental_health=True,
        ),
        ConditionCode(
            "recurrent-depression",
            "Recidiverende depressieve stoornis",
            (SNOMED, "66344007", "Recurrent major depression"),
            (ICD10, "F33.1", "Recurrent depressive disorder, current episode moderate"),
            medications=("escitalopram",),
            procedures=("psychotherapy",),
            mental_health=True,
        ),
        ConditionCode(
            "generalized-anxiety",
            "Gegeneraliseerde angststoornis",
            (SNOMED, "21897009", "Generalized anxiety disorder"),
            (ICD10, "F41.1", "Generalized anxiety disorder"),
            medications=("venlafaxine", "oxazepam"),
            procedures=("cbt",),
            mental_health=True,
        ),
        ConditionCode(
            "panic-disorder",
            "Paniekstoornis",
            (SNOMED, "371631005", "Panic disorder"),
            (ICD10, "F41.0", "Panic disorder [episodic paroxysmal anxiety]"),
            medications=("sertraline",),
            procedures=("cbt",),
            mental_health=True,
        ),
        ConditionCode(
            "ptsd",
            "Posttraumatische stressstoornis",
            (SNOMED, "47505003", "Posttraumatic stress disorder"),
            (ICD10, "F43.1", "Post-traumatic stress disorder"),
            procedures=("psychotherapy",),
            mental_health=True,
        ),
    )
)

GP_CONDITIONS = (
    "diabetes-type-2",
    "hypertension",
    "hypercholesterolemia",
    "copd",
    "asthma",
    "hypothyroidism",
    "osteoarthritis-knee",
)
HOSPITAL_CONDITIONS = (
    "heart-failure",
    "atrial-fibrillation",
    "coronary-artery-disease",
    "chronic-kidney-disease",
    "anemia",
)
NURSING_HOME_CONDITIONS = ("alzheimer", "stroke", "parkinson", "pressure-ulcer")
MENTAL_HEALTH_CONDITIONS = ("depression", "recurrent-depression", "generalized-anxiety", "panic-disorder", "ptsd")

_D, _W = "d", "wk"

MEDICATIONS: Mapping[str, MedicationCode] = _table(
    (
        MedicationCode(
            "metformine",
            "Metformine 500 mg tablet",
            (ATC, "A10BA02", "metformine"),
            "2x per dag 1 tablet",
            2,
            _D,
            1,
            "stuk",
        ),
        MedicationCode(
            "gliclazide",
            "Gliclazide 80 mg tablet",
            (ATC, "A10BB09", "gliclazide"),
            "1x per dag 1 tablet",
            1,
            _D,
            1,
            "stuk",
        ),
        MedicationCode(
            "lisinopril",
            "Lisinopril 10 mg tablet",
            (ATC, "C09AA03", "lisinopril"),
            "1x per dag 1 tablet",
            1,
            _D,
            1,
            "stuk",
        ),
        MedicationCode(
            "amlodipine",
            "Amlodipine 5 mg tablet",
            (ATC, "C08CA01", "amlodipine"),
            "1x per dag 1 tablet",
            1,
            _D,
            1,
            "stuk",
        ),
        MedicationCode(
            "hydrochloorthiazide",
            "Hydrochloorthiazide 12,5 mg tablet",
            (ATC, "C03AA03", "hydrochloorthiazide"),
            "1x per dag 1 tablet",
            1,
            _D,
            1,
            "stuk",
        ),
        MedicationCode(
            "losartan", "Losartan 50 mg tablet", (ATC, "C09CA01", "losartan"), "1x per dag 1 tablet", 1, _D, 1, "stuk"
        ),
        MedicationCode(
            "simvastatine",
            "Simvastatine 40 mg tablet",
            (ATC, "C10AA01", "simvastatine"),
            "1x per dag 1 tablet, 's avonds",
            1,
            _D,
            1,
            "stuk",
        ),
        MedicationCode(
            "atorvastatine",
            "Atorvastatine 40 mg tablet",
            (ATC, "C10AA05", "atorvastatine"),
            "1x per dag 1 tablet",
            1,
            _D,
            1,
            "stuk",
        ),
        MedicationCode(
            "salbutamol",
            "Salbutamol 100 microgram/dosis aerosol",
            (ATC, "R03AC02", "salbutamol"),
            "zo nodig 4x per dag 1-2 inhalaties",
            4,
            _D,
            2,
            "dosis",
            (ROUTE_OF_ADMINISTRATION, "53", "Inhalatie"),
        ),
        MedicationCode(
            "tiotropium",
            "Tiotropium 2,5 microgram/dosis inhalatievloeistof",
            (ATC, "R03BB04", "tiotropiumbromide"),
            "1x per dag 2 inhalaties",
            1,
            _D,
            2,
            "dosis",
            (ROUTE_OF_ADMINISTRATION, "53", "Inhalatie"),
        ),
        MedicationCode(
            "fluticason-salmeterol",
            "Fluticason/salmeterol 250/50 microgram/dosis inhalatiepoeder",
            (ATC, "R03AK06", "salmeterol en fluticason"),
            "2x per dag 1 inhalatie",
            2,
            _D,
            1,
            "dosis",
            (ROUTE_OF_ADMINISTRATION, "53", "Inhalatie"),
        ),
        MedicationCode(
            "levothyroxine",
            "Levothyroxine 50 microgram tablet",
            (ATC, "H03AA01", "levothyroxine"),
            "1x per dag 1 tablet, nuchter",
            1,
            _D,
            1,
            "stuk",
        ),
        MedicationCode(
            "paracetamol",
            "Paracetamol 500 mg tablet",
            (ATC, "N02BE01", "paracetamol"),
            "zo nodig 3x per dag 2 tabletten",
            3,
            _D,
            2,
            "stuk",
        ),
        MedicationCode(
            "furosemide",
            "Furosemide 40 mg tablet",
            (ATC, "C03CA01", "furosemide"),
            "1x per dag 1 tablet",
            1,
            _D,
            1,
            "stuk",
        ),
        MedicationCode(
            "bisoprolol",
            "Bisoprolol 5 mg tablet",
            (ATC, "C07AB07", "bisoprolol"),
            "1x per dag 1 tablet",
            1,
            _D,
            1,
            "stuk",
        ),
        MedicationCode(
            "spironolacton",
            "Spironolacton 25 mg tablet",
            (ATC, "C03DA01", "spironolacton"),
            "1x per dag 1 tablet",
            1,
            _D,
            1,
            "stuk",
        ),
        MedicationCode(
            "metoprolol",
            "Metoprololsuccinaat 50 mg tablet met gereguleerde afgifte",
            (ATC, "C07AB02", "metoprolol"),
            "1x per dag 1 tablet",
            1,
            _D,
            1,
            "stuk",
        ),
        MedicationCode(
            "apixaban", "Apixaban 5 mg tablet", (ATC, "B01AF02", "apixaban"), "2x per dag 1 tablet", 2, _D, 1, "stuk"
        ),
        MedicationCode(
            "carbasalaatcalcium",
            "Carbasalaatcalcium 100 mg bruistablet",
            (ATC, "B01AC08", "carbasalaatcalcium"),
            "1x per dag 1 tablet",
            1,
            _D,
            1,
            "stuk",
        ),
        MedicationCode(
            "ferrofumaraat",
            "Ferrofumaraat 200 mg tablet",
            (ATC, "B03AA02", "ferrofumaraat"),
            "1x per dag 1 tablet",
            1,
            _D,
            1,
            "stuk",
        ),
        MedicationCode(
            "donepezil",
            "Donepezil 10 mg tablet",
            (ATC, "N06DA02", "donepezil"),
            "1x per dag 1 tablet",
            1,
            _D,
            1,
            "stuk",
        ),
        MedicationCode(
            "levodopa-carbidopa",
            "Levodopa/carbidopa 100/25 mg tablet",
            (ATC, "N04BA02", "levodopa en decarboxylaseremmer"),
            "3x per dag 1 tablet",
            3,
            _D,
            1,
            "stuk",
        ),
        MedicationCode(
            "sertraline",
            "Sertraline 50 mg tablet",
            (ATC, "N06AB06", "sertraline"),
            "1x per dag 1 tablet",
            1,
            _D,
            1,
            "stuk",
        ),
        MedicationCode(
            "escitalopram",
            "Escitalopram 10 mg tablet",
            (ATC, "N06AB10", "escitalopram"),
            "1x per dag 1 tablet",
            1,
            _D,
            1,
            "stuk",
        ),
        MedicationCode(
            "venlafaxine",
            "Venlafaxine 75 mg capsule met gereguleerde afgifte",
            (ATC, "N06AX16", "venlafaxine"),
            "1x per dag 1 capsule",
            1,
            _D,
            1,
            "stuk",
        ),
        MedicationCode(
            "oxazepam",
            "Oxazepam 10 mg tablet",
            (ATC, "N05BA04", "oxazepam"),
            "zo nodig 1x per dag 1 tablet",
            1,
            _D,
            1,
            "stuk",
        ),
    )
)

LABS: Mapping[str, LabTest] = _table(
    (
        LabTest("hba1c", (LOINC, "4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood"), "%", 4.0, 6.0, 1, (5.6, 8.9)),
        LabTest(
            "glucose",
            (LOINC, "14771-0", "Fasting glucose [Moles/volume] in Serum or Plasma"),
            "mmol/L",
            4.0,
            6.1,
            1,
            (5.0, 10.5),
        ),
        LabTest(
            "egfr",
            (
                LOINC,
                "62238-1",
                "Glomerular filtration rate/1.73 sq M.predicted [Volume Rate/Area] in Serum, Plasma or Blood by "
                "Creatinine-based formula (CKD-EPI)",
            ),
            "mL/min/{1.73_m2}",
            60.0,
            120.0,
            0,
            (38.0, 95.0),
        ),
        LabTest(
            "creatinine",
            (LOINC, "14682-9", "Creatinine [Moles/volume] in Serum or Plasma"),
            "umol/L",
            50.0,
            110.0,
            0,
            (60.0, 160.0),
        ),
        LabTest(
            "potassium",
            (LOINC, "2823-3", "Potassium [Moles/volume] in Serum or Plasma"),
            "mmol/L",
            3.5,
            5.0,
            1,
            (3.4, 5.6),
        ),
        LabTest(
            "sodium",
            (LOINC, "2951-2", "Sodium [Moles/volume] in Serum or Plasma"),
            "mmol/L",
            135.0,
            145.0,
            0,
            (132.0, 144.0),
        ),
        LabTest(
            "cholesterol",
            (LOINC, "14647-2", "Cholesterol [Moles/volume] in Serum or Plasma"),
            "mmol/L",
            0.0,
            5.0,
            1,
            (4.0, 7.2),
        ),
        LabTest(
            "ldl",
            (LOINC, "22748-8", "Cholesterol in LDL [Moles/volume] in Serum or Plasma"),
            "mmol/L",
            0.0,
            2.6,
            1,
            (1.8, 4.6),
        ),
        LabTest(
            "tsh",
            (LOINC, "3016-3", "Thyrotropin [Units/volume] in Serum or Plasma"),
            "m[IU]/L",
            0.4,
            4.0,
            2,
            (0.3, 7.5),
        ),
        LabTest(
            "hemoglobin", (LOINC, "59260-0", "Hemoglobin [Moles/volume] in Blood"), "mmol/L", 7.5, 10.0, 1, (6.2, 9.6)
        ),
        LabTest(
            "nt-probnp",
            (LOINC, "33762-6", "Natriuretic peptide.B prohormone N-Terminal [Mass/volume] in Serum or Plasma"),
            "pg/mL",
            0.0,
            125.0,
            0,
            (90.0, 3200.0),
        ),
        LabTest(
            "troponin",
            (LOINC, "67151-1", "Troponin T.cardiac [Mass/volume] in Serum or Plasma by High sensitivity method"),
            "ng/L",
            0.0,
            14.0,
            0,
            (4.0, 40.0),
        ),
    )
)

PROCEDURES: Mapping[str, ProcedureCode] = _table(
    (
        ProcedureCode("ecg", (SNOMED, "29303009", "Electrocardiographic procedure"), "ECG"),
        ProcedureCode("spirometry", (SNOMED, "127783003", "Spirometry"), "Spirometrie"),
        ProcedureCode("echocardiography", (SNOMED, "40701008", "Echocardiography"), "Echocardiografie"),
        ProcedureCode("coronary-angiography", (SNOMED, "33367005", "Coronary angiography"), "Coronairangiografie"),
        ProcedureCode("pci", (SNOMED, "415070008", "Percutaneous coronary intervention"), "Dotterbehandeling (PCI)"),
        ProcedureCode("cardioversion", (SNOMED, "180325003", "Electrical cardioversion"), "Elektrische cardioversie"),
        ProcedureCode("colonoscopy", (SNOMED, "73761001", "Colonoscopy"), "Coloscopie"),
        ProcedureCode("wound-care", (SNOMED, "225358003", "Wound care"), "Wondverzorging"),
        ProcedureCode("cbt", (SNOMED, "228557008", "Cognitive and behavioral therapy"), "Cognitieve gedragstherapie"),
        ProcedureCode("psychotherapy", (SNOMED, "75516001", "Psychotherapy"), "Psychotherapie"),
    )
)

# Allergies: (key, code, category, criticality, manifestation)
ALLERGIES: Mapping[str, tuple[Coding, str, str, Coding]] = MappingProxyType(
    {
        "penicillin": ((SNOMED, "764146007", "Penicillin"), "medication", "high", (SNOMED, "126485001", "Urticaria")),
        "diclofenac": (
            (SNOMED, "7034005", "Diclofenac"),
            "medication",
            "low",
            (SNOMED, "271807003", "Eruption of skin"),
        ),
        "peanut": ((SNOMED, "762952008", "Peanut"), "food", "high", (SNOMED, "39579001", "Anaphylaxis")),
        "house-dust-mite": (
            (SNOMED, "260147004", "House dust mite"),
            "environment",
            "low",
            (SNOMED, "267101005", "Nasal discharge"),
        ),
        "latex": ((SNOMED, "111088007", "Latex"), "environment", "low", (SNOMED, "40275004", "Contact dermatitis")),
        "contrast-media": (
            (SNOMED, "385420005", "Contrast media"),
            "medication",
            "high",
            (SNOMED, "126485001", "Urticaria"),
        ),
    }
)

# Vital signs: LOINC codes of the FHIR vital-signs profile.
VITAL_BLOOD_PRESSURE = (LOINC, "85354-9", "Blood pressure panel with all children optional")
VITAL_SYSTOLIC = (LOINC, "8480-6", "Systolic blood pressure")
VITAL_DIASTOLIC = (LOINC, "8462-4", "Diastolic blood pressure")
VITAL_BODY_WEIGHT = (LOINC, "29463-7", "Body weight")
VITAL_BODY_HEIGHT = (LOINC, "8302-2", "Body height")
VITAL_HEART_RATE = (LOINC, "8867-4", "Heart rate")

# Encounter types (SNOMED) and classes (v3 ActCode).
ENCOUNTER_CONSULTATION = (SNOMED, "11429006", "Consultation")
ENCOUNTER_FOLLOW_UP = (SNOMED, "390906007", "Follow-up encounter")
ENCOUNTER_ADMISSION = (SNOMED, "32485007", "Hospital admission")
ENCOUNTER_PSYCHOTHERAPY = (SNOMED, "75516001", "Psychotherapy")
ENCOUNTER_CLASSES: Mapping[str, str] = MappingProxyType(
    {"AMB": "ambulatory", "IMP": "inpatient encounter", "NONAC": "inpatient non-acute", "HH": "home health"}
)
