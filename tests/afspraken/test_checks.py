"""Governance checks on crafted agreement systems: each test breaks one rule and expects it named."""

from __future__ import annotations

from pathlib import Path

from ldn.afspraken import harmonisation_summary, passes
from tests.afspraken.las_helpers import TODAY, LasBuilder, codes, only


def test_crafted_baseline_passes(las: LasBuilder) -> None:
    # Guards every test below: a failure there is caused by what that test changed.
    problems = las.check()
    assert passes(problems), problems


def test_schema_violation_names_file_and_path(las: LasBuilder) -> None:
    las.agreement(
        "LAS-TA-TEST-001",
        status="approved",
        parameters={"timeout": {"value": 30}},
        references=["not-an-id"],
    )
    problems = only(las.check(), "schema")
    locations = {p.location for p in problems}
    assert "las/agreements/LAS-TA-TEST-001.yaml:$.status" in locations
    assert "las/agreements/LAS-TA-TEST-001.yaml:$.parameters.timeout" in locations
    assert "las/agreements/LAS-TA-TEST-001.yaml:$.references[0]" in locations
    by_location = {p.location: p.message for p in problems}
    assert "'approved' is not one of" in by_location["las/agreements/LAS-TA-TEST-001.yaml:$.status"]
    assert "'unit' is a required property" in by_location["las/agreements/LAS-TA-TEST-001.yaml:$.parameters.timeout"]
    assert all(p.is_error for p in problems)


def test_schema_enforces_the_id_code(las: LasBuilder) -> None:
    # A TA id must be a technical agreement in the technical layer; a REF needs its owner.
    las.agreement("LAS-TA-TEST-002", kind="agreement", layer="juridisch")
    las.agreement("LAS-REF-TEST-001", drop=("owner",))
    problems = only(las.check(), "schema")
    locations = {p.location for p in problems}
    assert "las/agreements/LAS-TA-TEST-002.yaml:$.kind" in locations
    assert "las/agreements/LAS-TA-TEST-002.yaml:$.layer" in locations
    ref = [p for p in problems if "LAS-REF-TEST-001" in p.location]
    assert ref and "'owner' is a required property" in ref[0].message


def test_yaml_error_and_file_name_mismatch(las: LasBuilder) -> None:
    (las.root / "agreements" / "LAS-TA-BROKEN-001.yaml").write_text("id: [unclosed\n", encoding="utf-8")
    data = las.agreement("LAS-TA-TEST-003")
    (las.root / "agreements" / "LAS-TA-TEST-003.yaml").rename(las.root / "agreements" / "LAS-TA-OTHER-003.yaml")
    problems = las.check()
    assert only(problems, "yaml")[0].location == "las/agreements/LAS-TA-BROKEN-001.yaml"
    mismatch = only(problems, "filename")
    assert mismatch[0].location == "las/agreements/LAS-TA-OTHER-003.yaml"
    assert f"{data['id']}.yaml" in mismatch[0].message


def test_dangling_reference_is_reported(las: LasBuilder) -> None:
    las.agreement(
        "LAS-TA-TEST-001",
        references=["LAS-P-TEST-001", "LAS-TA-GHOST-001"],
        supersedes=["LAS-TA-GONE-001"],
        temporary={
            "valid_from": "2026-03-01",
            "valid_until": "2027-12-31",
            "replaced_by_expected": "Een landelijke afspraak die nog komt.",
            "replaced_by": "LAS-TA-NEXT-001",
        },
    )
    problems = las.check()
    (ref,) = only(problems, "dangling-reference")
    assert ref.location == "las/agreements/LAS-TA-TEST-001.yaml:$.references[1]"
    assert "LAS-TA-GHOST-001" in ref.message
    assert "LAS-TA-GONE-001" in only(problems, "dangling-supersedes")[0].message
    assert "LAS-TA-NEXT-001" in only(problems, "dangling-replaced-by")[0].message


def test_unknown_id_in_text_is_a_dangling_reference(las: LasBuilder) -> None:
    las.agreement("LAS-P-TEST-001", text="Zie LAS-P-TEST-001 en LAS-TA-TYPO-001 voor de uitwerking hiervan.")
    (problem,) = only(las.check(), "dangling-text-reference")
    assert problem.location == "las/agreements/LAS-P-TEST-001.yaml:$.text"
    assert "LAS-TA-TYPO-001" in problem.message


def test_two_normative_on_one_topic_fail(las: LasBuilder) -> None:
    las.agreement("LAS-TA-TEST-001", topic="auth.access-token")
    las.agreement("LAS-TA-TEST-002", topic="auth.access-token")
    las.release("1.0.0", {"LAS-TA-TEST-001": "1.0.0", "LAS-TA-TEST-002": "1.0.0"})
    (problem,) = only(las.check(), "duplicate-normative-topic")
    assert problem.is_error
    assert "LAS-TA-TEST-001" in problem.message and "LAS-TA-TEST-002" in problem.message
    assert "'auth.access-token'" in problem.message
    assert problem.location == "las/releases/1.0.0.yaml:$.agreements"

    # One of them only a candidate: allowed (that is how a successor is introduced).
    las.agreement("LAS-TA-TEST-002", topic="auth.access-token", status="candidate")
    assert "duplicate-normative-topic" not in codes(las.check())


def test_superseded_agreement_still_binding_fails(las: LasBuilder) -> None:
    las.agreement("LAS-TA-TEST-002", topic="test.new", supersedes=["LAS-TA-TEST-001"])
    las.release("1.0.0", {"LAS-TA-TEST-001": "1.0.0", "LAS-TA-TEST-002": "1.0.0"})
    (problem,) = only(las.check(), "superseded-still-binding")
    assert "LAS-TA-TEST-001" in problem.message and "LAS-TA-TEST-002" in problem.message

    las.agreement("LAS-TA-TEST-001", status="phased-out")
    assert "superseded-still-binding" not in codes(las.check())


def _temporary(valid_until: str) -> dict[str, str]:
    return {
        "valid_from": "2026-03-01",
        "valid_until": valid_until,
        "replaced_by_expected": "Landelijke afspraak over het veilige netwerk.",
    }


def test_expired_temporary_in_current_release_fails(las: LasBuilder) -> None:
    las.agreement("LAS-TA-TEST-001", temporary=_temporary("2026-10-31"))
    (problem,) = only(las.check(), "temporary-expired")
    assert problem.is_error
    assert problem.location == "las/agreements/LAS-TA-TEST-001.yaml:$.temporary.valid_until"
    assert "2026-10-31" in problem.message and "veilige netwerk" in problem.message

    # Still valid on 'today' itself, but expiring soon: a warning only.
    las.agreement("LAS-TA-TEST-001", temporary=_temporary("2026-12-31"))
    problems = las.check()
    assert passes(problems)
    assert "temporary-expiring" in codes(problems, "warning")

    # Expired but already phased out: that is the re-evaluation the rule asks for.
    las.agreement("LAS-TA-TEST-001", temporary=_temporary("2026-10-31"), status="phased-out")
    assert "temporary-expired" not in codes(las.check())


def test_temporary_agreement_longer_than_allowed_fails(las: LasBuilder) -> None:
    # LAS-G-TEMP-001: at most 24 months; 2026-03-01 up to and including 2028-02-29 is exactly that.
    las.agreement("LAS-TA-TEST-001", temporary=_temporary("2028-02-29"))
    assert "temporary-too-long" not in codes(las.check())
    las.agreement("LAS-TA-TEST-001", temporary=_temporary("2028-03-01"))
    (problem,) = only(las.check(), "temporary-too-long")
    assert "longer than the 24 months" in problem.message


def test_expired_temporary_only_counts_in_the_current_release(las: LasBuilder) -> None:
    las.agreement("LAS-TA-TEST-002", topic="test.other", temporary=_temporary("2026-10-31"))
    las.release("1.0.0", {"LAS-TA-TEST-002": "1.0.0"}, status="previous")
    las.release("1.1.0", {"LAS-P-TEST-001": "1.0.0"}, date="2026-09-01")
    assert "temporary-expired" not in codes(las.check())


def test_technical_agreement_without_tests_fails(las: LasBuilder) -> None:
    las.agreement("LAS-TA-TEST-001", conformance_tests=[])
    (problem,) = only(las.check(), "ta-without-tests")
    assert problem.is_error
    assert problem.location == "las/agreements/LAS-TA-TEST-001.yaml:$.conformance_tests"


def test_missing_test_file_is_warning_missing_function_is_error(las: LasBuilder, tmp_path: Path) -> None:
    test_file = tmp_path / "tests" / "area" / "test_x.py"
    test_file.parent.mkdir(parents=True)
    test_file.write_text(
        "def test_a():\n    pass\n\nclass TestK:\n    def test_b(self):\n        pass\n", encoding="utf-8"
    )
    las.agreement(
        "LAS-TA-TEST-001",
        conformance_tests=[
            "tests/area/test_x.py::test_a",
            "tests/area/test_x.py::TestK::test_b",
            "tests/area/test_x.py::test_a[case-1]",
            "tests/area/test_x.py::test_missing",
            "tests/later/test_y.py::test_z",
            "NTV-TEST-001",
        ],
    )
    problems = las.check(repo_root=tmp_path)
    (missing,) = only(problems, "conformance-test-missing")
    assert missing.is_error
    assert missing.location == "las/agreements/LAS-TA-TEST-001.yaml:$.conformance_tests[3]"
    (planned,) = only(problems, "conformance-test-planned")
    assert planned.severity == "warning"
    assert "tests/later/test_y.py" in planned.message


def test_three_minor_releases_in_one_year_fail(las: LasBuilder) -> None:
    agreements = {"LAS-P-TEST-001": "1.0.0"}
    las.release("1.0.0", agreements, date="2026-01-15", status="retired")
    las.release("1.1.0", agreements, date="2026-05-01", status="previous")
    las.release("1.2.0", agreements, date="2026-10-01", status="current")
    (problem,) = only(las.check(), "release-cadence")
    assert problem.is_error
    assert "3 major/minor releases in 2026" in problem.message
    assert "1.0.0, 1.1.0, 1.2.0" in problem.message


def test_patch_releases_do_not_count_towards_cadence(las: LasBuilder) -> None:
    agreements = {"LAS-P-TEST-001": "1.0.0"}
    las.release("1.0.0", agreements, date="2026-01-15", status="retired")
    las.release("1.0.1", agreements, date="2026-02-01", status="retired")
    las.release("1.1.0", agreements, date="2026-06-01", status="previous")
    las.release("1.1.1", agreements, date="2026-07-01", status="current")
    problems = las.check()
    assert "release-cadence" not in codes(problems)
    assert passes(problems), problems


def test_two_current_releases_fail(las: LasBuilder) -> None:
    las.release("1.1.0", {"LAS-P-TEST-001": "1.0.0"}, date="2026-09-01", status="current")
    (problem,) = only(las.check(), "release-current")
    assert "found 2: 1.0.0, 1.1.0" in problem.message


def test_no_current_release_fails(las: LasBuilder) -> None:
    las.release("1.0.0", {"LAS-P-TEST-001": "1.0.0"}, status="planned")
    assert "found 0" in only(las.check(), "release-current")[0].message


def test_bad_semver_release_fails(las: LasBuilder) -> None:
    las.release("1.2", {"LAS-P-TEST-001": "1.0.0"}, date="2026-04-01", status="planned")
    las.release("01.0.0", {"LAS-P-TEST-001": "1.0.0"}, date="2026-04-01", status="planned")
    problems = only(las.check(), "release-semver")
    assert {p.location for p in problems} == {
        "las/releases/1.2.yaml:$.version",
        "las/releases/01.0.0.yaml:$.version",
    }
    assert all(p.is_error for p in problems)


def test_previous_must_be_n_minus_one(las: LasBuilder) -> None:
    agreements = {"LAS-P-TEST-001": "1.0.0"}
    las.release("1.0.0", agreements, date="2026-01-15", status="previous")
    las.release("1.1.0", agreements, date="2026-06-01", status="retired")
    las.release("2.0.0", agreements, date="2027-01-15", status="current")
    problems = only(las.check(), "release-previous")
    messages = " | ".join(p.message for p in problems)
    assert "release 1.0.0 is marked previous" in messages
    assert "release 1.1.0 is the one just before current 2.0.0" in messages

    las.release("1.0.0", agreements, date="2026-01-15", status="retired")
    las.release("1.1.0", agreements, date="2026-06-01", status="previous")
    assert passes(las.check())


def test_planned_release_must_be_newer_than_current(las: LasBuilder) -> None:
    las.release("0.9.0", {"LAS-P-TEST-001": "1.0.0"}, date="2026-04-01", status="planned")
    problems = only(las.check(), "release-order")
    assert any("planned release 0.9.0" in p.message for p in problems)


def test_release_naming_unknown_agreements_fails(las: LasBuilder) -> None:
    las.release("1.0.0", {"LAS-P-TEST-001": "9.9.9", "LAS-TA-NOPE-001": "1.0.0"})
    problems = las.check()
    assert (
        only(problems, "release-unknown-version")[0].location == "las/releases/1.0.0.yaml:$.agreements.LAS-P-TEST-001"
    )
    assert "LAS-TA-NOPE-001" in only(problems, "release-unknown-agreement")[0].message


def test_duplicate_parameter_in_one_release_fails(las: LasBuilder) -> None:
    las.agreement("LAS-TA-TEST-002", parameters={"timeout": {"value": 60, "unit": "s"}})
    las.release("1.0.0", {"LAS-TA-TEST-001": "1.0.0", "LAS-TA-TEST-002": "1.0.0"})
    (problem,) = only(las.check(), "duplicate-parameter")
    assert "'timeout'" in problem.message


def test_history_file_rules(las: LasBuilder) -> None:
    stale_history = [{"version": "1.0.0", "date": "2026-03-01", "change": "Eerste vaststelling."}]
    las.agreement("LAS-TA-TEST-001", version="1.1.0", history=stale_history)
    las.agreement("LAS-TA-TEST-001", version="1.0.0", in_history=True)
    las.agreement("LAS-TA-TEST-001", version="2.0.0", in_history=True)
    problems = las.check()
    assert only(problems, "history-newer")[0].location == "las/agreements/history/LAS-TA-TEST-001@2.0.0.yaml"
    # The main file's last history entry describes 1.0.0 although the file is 1.1.0.
    assert "history-version" in codes(problems)


def test_harmonisation_unknown_las_id(las: LasBuilder) -> None:
    las.harmonisation(
        {
            "Nuts": {
                "description": "Nuts-afsprakenstelsel voor netwerkzorg.",
                "beheerder": "Stichting Nuts",
                "topics": {
                    "identification": {"status": "refers", "las": ["LAS-P-TEST-001", "LAS-SEM-NOPE-001"]},
                    "logging": {"status": "own"},
                },
            },
            "MedMij": {
                "description": "MedMij-afsprakenstelsel voor PGO's.",
                "beheerder": "Stichting MedMij",
                "topics": {
                    "identification": {
                        "status": "transition",
                        "las": ["LAS-P-TEST-001"],
                        "target_date": "2026-06-30",
                    }
                },
            },
        }
    )
    problems = las.check()
    (unknown,) = only(problems, "harmonisation-unknown-id")
    assert unknown.location == "las/harmonisation.yaml:$.systems.Nuts.topics.identification.las[1]"
    assert "LAS-SEM-NOPE-001" in unknown.message
    assert "harmonisation-unknown-topic" in codes(problems, "error")
    assert "harmonisation-overdue" in codes(problems, "warning")
    assert harmonisation_summary(las.load()) == {
        "MedMij": {"own": 0, "refers": 0, "transition": 1},
        "Nuts": {"own": 1, "refers": 1, "transition": 0},
    }


def test_transition_without_target_date_is_a_schema_error(las: LasBuilder) -> None:
    las.harmonisation(
        {
            "AORTA": {
                "description": "AORTA en het Landelijk Schakelpunt.",
                "beheerder": "VZVZ",
                "topics": {"identification": {"status": "transition", "las": ["LAS-P-TEST-001"]}},
            }
        }
    )
    (problem,) = only(las.check(), "schema")
    assert problem.location == "las/harmonisation.yaml:$.systems.AORTA.topics.identification"
    assert "target_date" in problem.message


def test_cadence_limit_is_read_from_the_governing_agreement(las: LasBuilder) -> None:
    # The rule is governed data: a repository that allows one feature release a year enforces one.
    las.agreement(
        "LAS-G-RELEASE-001",
        parameters={"max_feature_releases_per_year": {"value": 1, "unit": "1"}},
    )
    las.release("1.0.0", {"LAS-G-RELEASE-001": "1.0.0"}, date="2026-01-15", status="previous")
    las.release("1.1.0", {"LAS-G-RELEASE-001": "1.0.0"}, date="2026-06-01", status="current")
    (problem,) = only(las.check(TODAY), "release-cadence")
    assert "at most 1 a year" in problem.message
