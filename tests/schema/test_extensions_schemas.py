"""Extensions and schemas in specs, on a real database: created when declared (with a version), updated,
never dropped when undeclared; names and versions the server does not offer are bad input (exit 2)."""

from __future__ import annotations

import psycopg
import pytest

from migrate_assets.errors import SpecError
from migrate_assets.schema.planner import PlanOptions, build_plan
from migrate_assets.schema.spec import parse_spec_text
from tests.schema.helpers import converge, execute, plan, scalar

USES_CITEXT = """
- extension: citext
  version: "1.5"
- schema: crm
  comment: customer data
- table: contacts
  schema: crm
  columns:
    - {name: id, type: int, primary_key: true}
    - {name: email, type: public.citext}
    - {name: domain, type: public.citext, default: "'example.org'::public.citext"}
- view: contact_emails
  schema: crm
  definition: SELECT id, email FROM contacts
"""


def test_extension_schema_table_and_view_in_one_plan(fresh_dsn: str) -> None:
    p = converge(fresh_dsn, USES_CITEXT)
    assert [c.kind for c in p.changes] == ["create_schema", "create_extension", "comment_schema", "create_table",
                                           "create_view"]
    assert scalar(fresh_dsn, "SELECT extversion FROM pg_extension WHERE extname = 'citext'") == "1.5"
    execute(fresh_dsn, "INSERT INTO crm.contacts VALUES (1, 'A@B.org')")
    assert scalar(fresh_dsn, "SELECT count(*) FROM crm.contact_emails WHERE email = 'a@b.org'") == 1
    # a newer version: ALTER EXTENSION … UPDATE TO, reversible (the extension ships no path back: not reversible)
    p = converge(fresh_dsn, USES_CITEXT.replace('"1.5"', '"1.6"'))
    assert [c.kind for c in p.changes] == ["update_extension"]
    assert p.changes[0].sql == ('ALTER EXTENSION "citext" UPDATE TO \'1.6\'',)
    # back down: no update path on this server, refused with the reason
    down = plan(fresh_dsn, USES_CITEXT)
    assert any("no update path from version 1.6 to 1.5" in r for r in down.refusals), down.refusals
    # undeclared: never dropped
    assert plan(fresh_dsn, USES_CITEXT.split("- table:")[0].replace("- extension: citext\n  version: \"1.5\"\n", "")
                + "- table:" + USES_CITEXT.split("- table:")[1]).empty


@pytest.mark.parametrize(("doc", "key", "says"), [
    ("extension: no_such_extension_x\n", "extension", "not available"),
    ("extension: citext\nversion: '9.9'\n", "version", "no version '9.9'"),
])
def test_unknown_extension_or_version_is_bad_input(fresh_dsn: str, doc: str, key: str, says: str) -> None:
    with psycopg.connect(fresh_dsn, autocommit=True) as conn, pytest.raises(SpecError) as err:
        build_plan(conn, parse_spec_text(doc, "ext.yaml"), PlanOptions())
    problem = err.value.problems[0]
    assert (problem.file, problem.key, problem.line) == ("ext.yaml", key, 1 if key == "extension" else 2)
    assert says in problem.message
    assert err.value.exit_code == 2
    assert scalar(fresh_dsn, "SELECT count(*) FROM pg_extension WHERE extname <> 'plpgsql'") == 0


def test_duplicate_declarations_are_bad_input(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from migrate_assets.schema.spec import load_specs

    (tmp_path / "a.yaml").write_text("- view: v\n  definition: SELECT 1 AS a\n- schema: s\n")
    (tmp_path / "b.yaml").write_text("- view: v\n  definition: SELECT 2 AS a\n- extension: citext\n- extension: citext\n")
    with pytest.raises(SpecError) as err:
        load_specs([tmp_path])
    messages = sorted(p.message for p in err.value.problems)
    assert messages == ["duplicate extension citext", "duplicate view public.v"]
