"""Tests for ldn.localization (SPEC §6)."""
