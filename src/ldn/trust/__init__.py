"""Trust function: UZI certificate identity, a local test PKI, chain validation and Dezi declarations.

Modules (pure library code, no HTTP):

- :mod:`ldn.trust.uzi`: exact parsing of the UZI server-certificate identity (URA, AGB, UZI number).
- :mod:`ldn.trust.pki`: a local test PKI that issues certificates in the real UZI format.
- :mod:`ldn.trust.validation`: chain + CRL validation ending in a verified UZI identity; x5c helpers.
- :mod:`ldn.trust.dezi`: issuing and verifying Dezi-style professional declarations (verklaringen),
  including the URA binding to the presenting organisation's certificate.
"""
