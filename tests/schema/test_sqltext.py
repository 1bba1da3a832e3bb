"""The offline SQL expression tokenizer keeps quoted parts whole and names what is left open."""

from __future__ import annotations

import pytest

from migrate_assets.schema.sqltext import check_expression, tokens


def test_quoted_parts_stay_whole() -> None:
    assert tokens("E'a\\'b' || 'it''s' || \"Col\"\"x\" || x'1F'") == [
        "E'a\\'b'", "||", "'it''s'", "||", '"Col""x"', "||", "x'1F'"]  # fmt: skip
    assert tokens("'a\\'") == ["'a\\'"]  # a backslash escapes only in E'...'


@pytest.mark.parametrize(("expr", "what"), [("'abc", "string literal"), ("E'abc\\'", "string literal"),
                                            ('"abc', "quoted identifier"), ("'it''s", "string literal")])
def test_an_open_literal_is_named(expr: str, what: str) -> None:
    with pytest.raises(ValueError, match=f"unterminated {what}"):
        tokens(expr)
    assert check_expression(expr)
