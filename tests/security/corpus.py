"""The injection corpus: text a spec, change file or flag may carry where an SQL expression belongs.

`REJECTED` must never get past the checks (exit 2, naming file, line and key); `OFFLINE` are the ones the
offline scanner already refuses, the rest only Postgres' parse refuses. `UNRUN` are valid expressions with side
effects: allowed (a volatile default such as `nextval` is legitimate), but plan, dry runs and validation must
never run them. `LEGIT` must keep working. Every payload types as `text` (the corpus columns are text).
"""

from __future__ import annotations

#: the table every payload tries to reach, and the sequence whose value must not move
CANARY = "canary"
CANARY_SEQ = "canary_seq"

#: refused by `sqltext.check_expression` (no database needed)
OFFLINE: dict[str, str] = {
    "issue_plan_comment_quote": "1 +/* ' */ 1); COMMIT; DROP TABLE canary; SELECT (1 /* ' */ + 1",
    "issue_evolve_semicolon": "'a'; DROP TABLE canary; --",
    "close_paren_then_statement": "'x'); DROP TABLE canary; SELECT ('x'",
    "commit_escape": "'x') ; COMMIT ; DROP TABLE canary ; --",
    "line_comment": "'x' -- DROP TABLE canary",
    "block_comment": "'x' /* DROP TABLE canary */",
    "comment_hides_quote": "/* ' */ 'x' /* ' */",
    "operator_then_line_comment": "'x' ||-- '\n 'y'",
    "operator_then_block_comment": "'x' ||/* ' */ 'y'",
    "nested_comment": "'x' /* /* */ DROP TABLE canary */",
    "dollar_then_statement": "$$ $$; DROP TABLE canary; SELECT $$ $$",
    "dollar_tag_then_statement": "$a$ $b$ $a$; DROP TABLE canary; --",
    "dollar_unterminated": "$a$ DROP TABLE canary",
    "non_ascii_ident_dollar": "é$x$ ); DROP TABLE canary; SELECT $x$",
    "e_string_backslash_semicolon": "E'\\\\'; DROP TABLE canary; --'",
    "e_string_escaped_quote_paren": "E'\\''); DROP TABLE canary; --",
    "e_string_hex_quote": "E'\\x27'); DROP TABLE canary; --",
    "backslash_quote_standard": "'\\'); DROP TABLE canary; --",
    "unicode_escape_paren": "U&'\\0027'); DROP TABLE canary; --",
    "double_close": "'x')) OR (('x'",
    "open_left": "('x') || ('x'",
    "bare_semicolon": ";",
    "empty": "  ",
    "newline_statement": "'x'\n;\nDROP TABLE canary",
    "dangling_operator": "'x' ||",
    "unterminated_string": "'x",
    "quoted_ident_unterminated": '"canary',
}

#: subqueries: refused in a default or an index predicate (Postgres refuses them there too), allowed in the
#: values of `up` / `down` / `backfill`, which may read other tables
NO_SUBQUERY: dict[str, str] = {
    "subquery_select": "(SELECT 'x')",
    "subquery_values": "(VALUES ('x'))",
}

#: pass the offline scanner; Postgres' parse refuses them (as defaults: no columns, no subqueries)
PARSE: dict[str, str] = {
    "subquery_writes": "(WITH d AS (DELETE FROM canary RETURNING 1) SELECT 'x')",
    "delete_as_expression": "DELETE FROM canary",
    "union_select": "'x' UNION SELECT 'y'",
    "column_reference": '"canary"',
    "unknown_function": "no_such_function_xyz()",
    "aggregate": "string_agg('x', ',')",
    "set_returning": "generate_series(1, 2)::text",
    "void_cast": "pg_sleep(30)::integer",
    "drop_keyword": "DROP TABLE canary",
    "commit_keyword": "COMMIT",
    "into_keyword": "'x' INTO canary",
}

#: valid expressions with side effects: accepted (they are what the spec asks Postgres to store), never run by
#: plan, dry runs or validation
UNRUN: dict[str, str] = {
    "nextval": "nextval('canary_seq')::text",
    "pg_sleep": "(pg_sleep(30) IS NULL)::text",
    "set_config": "set_config('search_path', 'pg_temp', false)",
    "lo_import": "lo_import('/etc/hostname')::text",
    "query_to_xml_drop": "query_to_xml('DROP TABLE canary', false, false, '')::text",
    "dblink_exec_drop": "dblink_exec('dbname=' || current_database(), 'DROP TABLE canary')",
    "terminate_self": "pg_terminate_backend(pg_backend_pid())::text",
}

#: legitimate expressions that must keep working (and store what they say)
LEGIT: dict[str, str] = {
    "doubled_quote": "'it''s'",
    "injection_inside_literal": "'a''; DROP TABLE canary; --'",
    "dollar_literal_with_injection": "$t$'); DROP TABLE canary; --$t$",
    "plain_dollar": "$$x$$",
    "e_string_newline": "E'a\\nb'",
    "unicode_escape": "U&'\\0041'",
    "nested_parens": "((((('x')))))",
    "concat": "'a' || 'b'",
    "now_text": "now()::text",
    "bit_string": "B'101'::text",
    "national": "N'x'",
}

REJECTED = {**OFFLINE, **PARSE}
