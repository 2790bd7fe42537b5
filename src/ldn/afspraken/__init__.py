"""The Landelijk afsprakenstelsel (LAS) as data: load, query, diff and check the agreements.

The agreements themselves live in ``afsprakenstelsel/`` at the repository root. Typical use::

    from ldn.afspraken import default_repository, run_checks, diff_releases

    repo = default_repository()                       # strict load, cached per process
    lifetime = repo.parameter("LAS-TA-AUTH-002", "access_token_lifetime", expect=int)  # 900
    problems = run_checks(repo, today=date.today())  # passes when no problem is an error
    print(diff_releases(repo, "1.0.0", "1.1.0").format())
"""

from ldn.afspraken.checks import (
    ConformanceTest,
    conformance_tests,
    errors,
    harmonisation_summary,
    passes,
    run_checks,
)
from ldn.afspraken.diff import (
    AgreementChange,
    ParameterChange,
    ReleaseDiff,
    diff_agreements,
    diff_releases,
)
from ldn.afspraken.model import (
    Agreement,
    Harmonisation,
    HarmonisationStatus,
    Kind,
    Layer,
    Parameter,
    ParameterValue,
    Plateau,
    Problem,
    Reference,
    Release,
    ReleaseStatus,
    SemVer,
    Status,
    Temporary,
    is_compatible,
)
from ldn.afspraken.repository import (
    AfsprakenError,
    AgreementRepository,
    AmbiguousParameterError,
    GovernedParameter,
    RepositoryError,
    ResolvedRelease,
    UnknownAgreementError,
    UnknownParameterError,
    UnknownReleaseError,
    default_repository,
    find_root,
)

__all__ = [
    "AfsprakenError",
    "Agreement",
    "AgreementChange",
    "AgreementRepository",
    "AmbiguousParameterError",
    "ConformanceTest",
    "GovernedParameter",
    "Harmonisation",
    "HarmonisationStatus",
    "Kind",
    "Layer",
    "Parameter",
    "ParameterChange",
    "ParameterValue",
    "Plateau",
    "Problem",
    "Reference",
    "Release",
    "ReleaseDiff",
    "ReleaseStatus",
    "RepositoryError",
    "ResolvedRelease",
    "SemVer",
    "Status",
    "Temporary",
    "UnknownAgreementError",
    "UnknownParameterError",
    "UnknownReleaseError",
    "conformance_tests",
    "default_repository",
    "diff_agreements",
    "diff_releases",
    "errors",
    "find_root",
    "harmonisation_summary",
    "is_compatible",
    "passes",
    "run_checks",
]
