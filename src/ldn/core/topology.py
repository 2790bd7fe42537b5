"""The network topology: national services, care organisations, professionals, citizens.

A topology is a YAML file (default: `ldn/data/network.yaml`, overridable with `--topology` or
`LDN_TOPOLOGY`). `load_topology` validates it completely and raises `TopologyError` listing every
problem with its location (`file:line: path: message`), so a broken file is fixed in one pass.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ldn.core.identifiers import AGB, BSN, KVK, URA, IdentifierError, RoleCode, UziNumber

OrganizationType = Literal[
    "huisartspraktijk",
    "ziekenhuis",
    "apotheek",
    "verpleeghuis",
    "ggz-instelling",
    "laboratorium",
    "national-service",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check(parser: Any, value: Any) -> str:
    try:
        return str(parser.parse(value))
    except IdentifierError as exc:
        raise ValueError(exc.reason) from None


class Professional(_Model):
    """A care professional with a UZI/Dezi number and a role code at one employer."""

    uzi: str = Field(description="UZI/Dezi number, 9 digits")
    initials: str
    prefix: str = ""
    family_name: str
    role_code: str
    role_name: str

    @field_validator("uzi", mode="before")
    @classmethod
    def _uzi(cls, v: Any) -> str:
        return _check(UziNumber, v)

    @field_validator("role_code", mode="before")
    @classmethod
    def _role(cls, v: Any) -> str:
        return _check(RoleCode, v)

    @property
    def display_name(self) -> str:
        return " ".join(p for p in (self.initials, self.prefix, self.family_name) if p)


class Organization(_Model):
    """A participant (care provider) or the operator of a national service."""

    ura: str
    agb: str | None = None
    kvk: str | None = None
    name: str
    type: OrganizationType
    city: str = ""
    vendor: str | None = Field(None, description="id of the vendor that publishes its addressing data")
    services: list[str] = Field(default_factory=list, description="national services it operates")
    professionals: list[Professional] = Field(default_factory=list)

    @field_validator("ura", mode="before")
    @classmethod
    def _ura(cls, v: Any) -> str:
        return _check(URA, v)

    @field_validator("agb", mode="before")
    @classmethod
    def _agb(cls, v: Any) -> str | None:
        return None if v is None else _check(AGB, v)

    @field_validator("kvk", mode="before")
    @classmethod
    def _kvk(cls, v: Any) -> str | None:
        return None if v is None else _check(KVK, v)


class Vendor(_Model):
    """A software vendor that publishes addressing data for the organisations that mandate it."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,40}$")
    name: str
    kvk: str

    @field_validator("kvk", mode="before")
    @classmethod
    def _kvk(cls, v: Any) -> str:
        return _check(KVK, v)


class Citizen(_Model):
    """A synthetic citizen (test BSN) and the providers holding data about them."""

    bsn: str
    given_name: str
    family_name: str
    birth_date: date
    gender: Literal["male", "female", "other", "unknown"]
    providers: list[str] = Field(default_factory=list, description="URAs of organisations holding data")

    @field_validator("bsn", mode="before")
    @classmethod
    def _bsn(cls, v: Any) -> str:
        return _check(BSN, v)

    def __repr__(self) -> str:  # never print a BSN by accident
        return f"Citizen(bsn=***{self.bsn[-2:]}, {self.given_name} {self.family_name})"


class Topology(_Model):
    """A whole network: who takes part and who operates what."""

    version: Literal[1] = 1
    name: str = "ldn"
    national: list[Organization]
    vendors: list[Vendor] = Field(default_factory=list)
    organizations: list[Organization]
    citizens: list[Citizen]

    def organization(self, ura: str) -> Organization:
        for org in self.all_organizations():
            if org.ura == ura:
                return org
        raise KeyError(ura)

    def all_organizations(self) -> Iterator[Organization]:
        yield from self.national
        yield from self.organizations

    def operator_of(self, service: str) -> Organization | None:
        for org in self.national:
            if service in org.services:
                return org
        return None

    def professional(self, uzi: str) -> tuple[Professional, Organization]:
        for org in self.all_organizations():
            for prof in org.professionals:
                if prof.uzi == uzi:
                    return prof, org
        raise KeyError(uzi)

    def citizen(self, bsn: str) -> Citizen:
        for citizen in self.citizens:
            if citizen.bsn == bsn:
                return citizen
        raise KeyError("unknown citizen")


@dataclass(frozen=True)
class TopologyProblem:
    location: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.path}: {self.message}" if self.path else f"{self.location}: {self.message}"


class TopologyError(ValueError):
    def __init__(self, source: str, problems: list[TopologyProblem]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"invalid topology {source} ({len(problems)} problem(s)):\n{lines}")


def _line_index(node: yaml.Node, path: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], int]:
    """Map each YAML path (keys and list indexes) to its 1-based line number."""
    index = {path: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            index.update(_line_index(value_node, (*path, key_node.value)))
            index[(*path, key_node.value)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            index.update(_line_index(item, (*path, i)))
    return index


def _semantic_problems(topology: Topology) -> list[tuple[tuple[Any, ...], str]]:
    problems: list[tuple[tuple[Any, ...], str]] = []
    all_orgs = [("national", i, o) for i, o in enumerate(topology.national)] + [
        ("organizations", i, o) for i, o in enumerate(topology.organizations)
    ]
    ura_counts = Counter(o.ura for _, _, o in all_orgs)
    uzi_counts = Counter(p.uzi for _, _, o in all_orgs for p in o.professionals)
    vendor_ids = {v.id for v in topology.vendors}
    for section, i, org in all_orgs:
        if ura_counts[org.ura] > 1:
            problems.append(((section, i, "ura"), f"URA {org.ura} is used by more than one organisation"))
        if org.vendor is not None and org.vendor not in vendor_ids:
            problems.append(((section, i, "vendor"), f"unknown vendor {org.vendor!r}"))
        for j, prof in enumerate(org.professionals):
            if uzi_counts[prof.uzi] > 1:
                problems.append(((section, i, "professionals", j, "uzi"), f"UZI number {prof.uzi} is not unique"))
    for i, org in enumerate(topology.organizations):
        if org.type == "national-service":
            problems.append((("organizations", i, "type"), "national-service belongs under 'national'"))
    service_counts = Counter(s for org in topology.national for s in org.services)
    for i, org in enumerate(topology.national):
        if not org.services:
            problems.append((("national", i, "services"), "a national organisation must operate a service"))
        for s in org.services:
            if service_counts[s] > 1:
                problems.append((("national", i, "services"), f"service {s!r} has more than one operator"))
    participant_uras = {o.ura for o in topology.organizations}
    bsn_counts = Counter(c.bsn for c in topology.citizens)
    for i, citizen in enumerate(topology.citizens):
        if bsn_counts[citizen.bsn] > 1:
            problems.append((("citizens", i, "bsn"), "BSN is used by more than one citizen"))
        for j, ura in enumerate(citizen.providers):
            if ura not in participant_uras:
                problems.append((("citizens", i, "providers", j), f"unknown organisation URA {ura}"))
    return problems


def parse_topology(text: str, source: str = "<topology>") -> Topology:
    """Validate YAML text into a Topology, collecting every problem before failing."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"{source}:{mark.line + 1}" if mark else source
        raise TopologyError(
            source, [TopologyProblem(line, "", f"YAML syntax: {getattr(exc, 'problem', exc)}")]
        ) from None
    if node is None or not isinstance(data, dict):
        raise TopologyError(source, [TopologyProblem(source, "", "expected a mapping at the top level")])
    lines = _line_index(node)

    def where(path: tuple[Any, ...]) -> str:
        for cut in range(len(path), -1, -1):
            if path[:cut] in lines:
                return f"{source}:{lines[path[:cut]]}"
        return source

    def dotted(path: tuple[Any, ...]) -> str:
        return ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in path).replace(".[", "[")

    try:
        topology = Topology.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            path = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
            message = err["msg"].removeprefix("Value error, ")
            problems.append(TopologyProblem(where(path), dotted(path), message))
        raise TopologyError(source, problems) from None
    semantic = _semantic_problems(topology)
    if semantic:
        raise TopologyError(source, [TopologyProblem(where(p), dotted(p), m) for p, m in semantic])
    return topology


def default_topology_text() -> str:
    return resources.files("ldn.data").joinpath("network.yaml").read_text(encoding="utf-8")


def load_topology(path: Path | None = None) -> Topology:
    """Load and validate a topology file; None means the default one shipped in the package."""
    if path is None:
        return parse_topology(default_topology_text(), "ldn/data/network.yaml")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TopologyError(str(path), [TopologyProblem(str(path), "", f"cannot read: {exc.strerror}")]) from None
    return parse_topology(text, str(path))
