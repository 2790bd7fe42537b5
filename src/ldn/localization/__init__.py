"""Localization function (SPEC §6): the crypto core of the pseudonymisation service (PRS) and the
national referral index (NVI): RFC 9497 OPRF, identifier derivation and the PRS answer envelope."""
