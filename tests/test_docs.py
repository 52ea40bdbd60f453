"""Documentation that states a contract is checked against the code."""

from __future__ import annotations

import re
from pathlib import Path

from sealtrail.server.app import OPEN_ROUTES, ROUTE_ROLES

ROLES = ("ingest", "reader", "auditor", "admin")
DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_the_route_table_in_the_docs_is_the_code_s() -> None:
    """docs/service.md's route table says exactly who ROUTE_ROLES lets in, route by route."""
    rows = re.findall(r"^\| `(GET|POST|PUT|PATCH|DELETE) (\S+)` \| (.+) \|$",
                      (DOCS / "service.md").read_text(), re.MULTILINE)
    documented = {}
    for method, path, cells in rows:
        marks = [c.strip() for c in cells.split("|")]
        documented[(method, path)] = marks
    expected = {route: ["yes" if r in allowed else "—" for r in ROLES]
                for route, allowed in ROUTE_ROLES.items()}
    expected.update({route: ["open"] * 4 for route in OPEN_ROUTES})
    assert documented == expected
