"""Topology loading: the shipped default is valid, and broken files report every problem with its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from ldn.core.identifiers import is_valid_bsn
from ldn.core.topology import TopologyError, load_topology, parse_topology


def test_default_topology_has_the_required_participants() -> None:
    topo = load_topology()
    types = {o.type for o in topo.organizations}
    assert {"huisartspraktijk", "ziekenhuis", "apotheek", "verpleeghuis", "ggz-instelling"} <= types
    assert len(topo.citizens) >= 20
    assert all(is_valid_bsn(c.bsn) and c.bsn.startswith("99999") for c in topo.citizens)
    assert all(p.uzi and p.role_code for o in topo.organizations for p in o.professionals)
    # national services are organisations with a URA of their own
    assert topo.operator_of("nvi") is not None
    assert topo.operator_of("nvi").ura == "90000901"  # type: ignore[union-attr]
    assert topo.organization("00000020").name.startswith("Huisarts")


BROKEN = """\
version: 1
national:
  - ura: "9000090"
    name: NVI
    type: national-service
    services: [nvi]
organizations:
  - ura: "00000020"
    name: GP
    type: huisartspraktijk
    vendor: nobody
    professionals:
      - {uzi: "12345", initials: A., family_name: X, role_code: "1.015", role_name: GP}
  - ura: "00000020"
    name: Duplicate
    type: ziekenhuis
citizens:
  - {bsn: "999990018", given_name: A, family_name: B, birth_date: 2000-01-01, gender: female}
"""


def test_broken_topology_lists_every_problem_with_location(tmp_path: Path) -> None:
    path = tmp_path / "net.yaml"
    path.write_text(BROKEN)
    with pytest.raises(TopologyError) as info:
        load_topology(path)
    problems = [str(p) for p in info.value.problems]
    text = "\n".join(problems)
    assert f"{path}:3: national[0].ura" in text
    assert "organizations[0].professionals[0].uzi" in text
    assert "organizations[0].professionals[0].role_code" in text
    assert "citizens[0].bsn" in text and "11-check" in text
    assert len(problems) >= 4


def test_semantic_problems_reported_after_schema_passes() -> None:
    text = BROKEN.replace('"9000090"', '"90000901"').replace('"12345"', '"900000011"')
    text = text.replace('"1.015"', '"01.015"').replace('"999990018"', '"999990019"')
    with pytest.raises(TopologyError) as info:
        parse_topology(text, "net.yaml")
    messages = "\n".join(str(p) for p in info.value.problems)
    assert "URA 00000020 is used by more than one organisation" in messages
    assert "unknown vendor 'nobody'" in messages
    assert "net.yaml:11" in messages  # the vendor line


def test_yaml_syntax_error_has_a_line() -> None:
    with pytest.raises(TopologyError, match=r"net.yaml:3: YAML syntax"):
        parse_topology("version: 1\nname: x\n  bad: [1\nnational: []\n", "net.yaml")


def test_citizen_repr_hides_bsn() -> None:
    citizen = load_topology().citizens[0]
    assert citizen.bsn not in repr(citizen)
