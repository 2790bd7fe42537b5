"""Data categories: the NVI's set, token parsing, and agreement with the consent function."""

from __future__ import annotations

import pytest

from ldn.localization.categories import (
    DATA_CATEGORIES,
    DATA_CATEGORY_SYSTEM,
    UnknownCategoryError,
    category_coding,
    parse_category_token,
)


def test_the_spec_categories() -> None:
    assert len(DATA_CATEGORIES) == 16
    assert {"AllergyIntolerance", "Imaging", "ObservationLaboratory", "Consent"} <= set(DATA_CATEGORIES)
    assert category_coding("Imaging")["coding"][0] == {
        "system": DATA_CATEGORY_SYSTEM,
        "code": "Imaging",
        "display": "Beelden",
    }


def test_tokens() -> None:
    assert parse_category_token("Imaging") == "Imaging"
    assert parse_category_token(f"{DATA_CATEGORY_SYSTEM}|Imaging") == "Imaging"
    for bad in ("imaging", "|Imaging", "http://example.org|Imaging", "", f"{DATA_CATEGORY_SYSTEM}|"):
        with pytest.raises(UnknownCategoryError):
            parse_category_token(bad)
    with pytest.raises(UnknownCategoryError):
        category_coding("Horoscope")


def test_every_nvi_category_maps_to_a_consent_category() -> None:
    """A record the consent check cannot classify could never be shown: the sets must agree."""
    consent = pytest.importorskip("ldn.consent.categories")
    assert set(DATA_CATEGORIES) == set(consent.NVI_CATEGORIES)
