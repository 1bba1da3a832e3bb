"""The view, materialized-view, extension and schema pairs checked with a tool that is not ours: after export B →
plan A → apply, `pg_dump --schema-only` of A equals B's (tests/schema/fixtures, the runner's other checks are in
test_fixture_pairs.py)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.schema.helpers import apply, execute
from tests.schema.test_fixture_pairs import FIXTURES, _export, _plan

pytestmark = pytest.mark.skipif(shutil.which("pg_dump") is None, reason="pg_dump not installed")
CASES = ["views", "view_chain_type", "matviews", "extension_schema"]


def _dump(dsn: str) -> str:
    out = subprocess.run([str(shutil.which("pg_dump")), "--schema-only", "--no-owner", "-d", dsn], check=True,
                         capture_output=True, text=True).stdout
    lines = [ln for ln in out.splitlines() if ln and not ln.startswith("--") and not ln.startswith("\\")]
    return re.sub(r"\n{2,}", "\n", "\n".join(lines))


@pytest.mark.parametrize("case", CASES)
def test_pair_dumps_alike(fresh_db_factory, tmp_path: Path, case: str) -> None:  # type: ignore[no-untyped-def]
    b_sql, _, _ = (FIXTURES / case / "b.sql").read_text().partition("-- @inserts")
    a, b = fresh_db_factory(), fresh_db_factory()
    execute(a, (FIXTURES / case / "a.sql").read_text())
    execute(b, b_sql)
    _export(b, tmp_path)
    apply(a, _plan(a, tmp_path, []), on_breaking_change="warn")
    assert _dump(a) == _dump(b)
