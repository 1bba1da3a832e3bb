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
    # one expression as the gate parses it (standard_conforming_strings on), but a generated SQL function's body is
    # read again by each calling session: with it off, `'\\'` does not end, the `--` hides the quote, and the
    # body becomes CAST(…) ; DELETE FROM canary ; SELECT CAST(…) — run by any writer whose session has it off
    "scs_off_function_body": "'\\' || ' ) AS text) ; DELETE FROM canary ; SELECT CAST(( 1 --'\n || 'x'",
    "scs_off_national": "N'\\' || ' ) AS text) ; DELETE FROM canary ; SELECT CAST(( 1 --'\n || 'x'",
    # an E'' literal continued on the next line stays an E'' literal: `\\'` there does not end it
    "e_string_continuation": "E'a'\n'\\'' ; DROP TABLE canary ; SELECT E'\\''",
    # U+00A0 is no whitespace to Postgres but a letter: `\u00a0$a$` is an identifier, not a dollar quote
    "nbsp_dollar_is_identifier": "\u00a0$a$ ) ; DROP TABLE canary ; SELECT (\u00a0$a$",
    "nbsp_e_is_identifier": "\u00a0e'\\' ; DROP TABLE canary; SELECT E'\\''",
    "nul_byte": "'x'\x00); DROP TABLE canary; --",
    # a prepared statement's Parse accepts `$1` (a parameter of unknown type); no DDL can hold one
    "positional_parameter": "$1::text",
    "minus_block_comment": "'x' ||-/* ') ; DROP TABLE canary; -- */ 'y'",
    "nested_comment_quote": "'x' /* /* */ ') ; DROP TABLE canary ; -- */ 'y'",
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
    "comment_closer_operator": "'x' */ 'y'",
    "psql_variable": "'x' || :'canary'",
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
    "pg_read_file": "pg_read_file('/etc/hostname')",
    "dblink_behind_case": "CASE WHEN random() < 2 THEN dblink_exec('dbname=' || current_database(), 'DROP TABLE canary') "
                          "END",
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
    "e_string_continued": "E'a\\n'\n'b\\\\'",
    "dollar_quotes_inside_dollar": "$a$ $$ $b$ ); DROP TABLE canary; -- $a$",
    "unicode_uescape": "U&'!0041' UESCAPE '!'",
    "backslash_in_e_string": "E'C:\\\\temp'",
}

REJECTED = {**OFFLINE, **PARSE}
