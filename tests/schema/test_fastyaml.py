"""rapidyaml's reading (fastyaml) must give exactly PyYAML's data, or decline and leave the file to PyYAML."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import string
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migrate_assets.errors import InvalidInputError
from migrate_assets.schema import fastyaml
from migrate_assets.schema.yamlsrc import parse_yaml, parse_yaml_fast


def pyyaml(text: str) -> Any:
    return yaml.load(text, Loader=yaml.SafeLoader)


def same(a: Any, b: Any) -> bool:
    """Equal values of equal types all the way down (1 == True == 1.0 in Python; YAML tells them apart)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(k, k2) and same(a[k], b[k2]) for k, k2 in zip(a, b, strict=True))
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


def outcome(text: str) -> str:
    """"read" (and equal to PyYAML's data), "declined", or "refused" by PyYAML, in which case the fast path
    must have declined too, so that PyYAML's error is the one the user sees."""
    try:
        expected = pyyaml(text)
    except yaml.YAMLError:
        with pytest.raises(fastyaml.Declined):
            fastyaml.load(text)
        return "refused"
    try:
        got = fastyaml.load(text)
    except fastyaml.Declined:
        return "declined"
    assert same(got, expected), (text, got, expected)
    return "read"


# plain scalars that YAML 1.1 (PyYAML) and YAML 1.2 / rapidyaml's JSON read differently, and some that agree
TRICKY = [
    "yes", "No", "on", "OFF", "y", "n", "~", "null", "Null", "NULL", "true", "True", "FALSE", "nan", "NaN", ".nan",
    "inf", ".inf", "-.inf", "Infinity", "1e3", "1.0e3", "1.0e+3", "1E3", "0x1F", "017", "0o17", "0b101", "1_000",
    "+12", "-0", "1:20", "190:20:30", "2001-12-14", "2001-12-14t21:59:43.10-05:00", "12.5", ".5", "1.", "-3", "007",
    "3.0", "+1.5", "12345678901234567890", "1.7976931348623157e309", "0", "00", "-", "a b", "10 apples",
    "t00001", "varchar(64)", "now()", "(c11 > 0)", "x:y", "a#b", "é", "日本",
]  # fmt: skip


@pytest.mark.parametrize("scalar", TRICKY)
@pytest.mark.parametrize("shape", ["k: {}\n", "- {}\n", "{{k: {}}}\n", "[{}]\n", "{}: v\n", "{}\n"])
def test_plain_scalars_are_read_as_pyyaml_reads_them(scalar: str, shape: str) -> None:
    if outcome(shape.format(scalar)) == "declined":
        # rapidyaml writes `+12` unchanged into its JSON, which is not JSON; it refuses a lone `-` in flow style
        assert scalar in ("+12", "+1.5", "-"), f"{shape.format(scalar)!r} was declined"


def test_the_benchmark_style_spec_is_taken_by_the_fast_path_and_equals_pyyaml() -> None:
    specs = [
        {"table": f"t{i:05d}", "comment": f"table {i}", "columns": [
            {"name": "id", "type": "bigserial", "primary_key": True},
            {"name": "c1", "type": "numeric(12,2)", "nullable": False, "default": "0"},
            {"name": "c2", "type": "boolean", "nullable": True, "default": "false"},
        ], "indexes": [{"columns": ["c1"]}, {"name": f"t{i}_p", "columns": ["c2"], "where": "(c2 > 0)"}]}
        for i in range(30)
    ]  # fmt: skip
    block, as_json = yaml.safe_dump(specs, sort_keys=False), json.dumps(specs, indent=1)
    one_line_flow = yaml.safe_dump(specs, default_flow_style=True, width=10**6)
    for text in (block, as_json, one_line_flow):
        got = fastyaml.load(text)  # must not decline
        assert same(got, pyyaml(text))
        assert got[0]["columns"][1]["default"] == "0" and got[0]["columns"][2]["default"] == "false"
    wrapped_flow = yaml.safe_dump(specs, default_flow_style=True, width=80)  # plain words in multi-line flow
    with pytest.raises(fastyaml.Declined):
        fastyaml.load(wrapped_flow)
    assert same(parse_yaml_fast(wrapped_flow, "f.yaml").data, pyyaml(wrapped_flow))


def test_dumped_view_definitions_and_empty_lists_stay_on_the_lean_path() -> None:
    """PyYAML's dumper folds a long plain scalar before an indicator (`WHERE t.c1\n    > 0`) and writes an empty
    list as `[]`: neither is a node start, so such files are read without a tree lookup per node."""
    docs = [{"table": "t", "foreign_keys": [], "checks": {}},
            {"view": "v", "definition": "SELECT t00100.id, t00100.c1, t00100.state FROM public.t00100 WHERE t00100.c1 > 0"},
            {"view": "w", "definition": "SELECT a FROM b WHERE a | 1 = 1 AND c @> d AND e ? 'x' AND f[1] = 2" + " AND a > 0" * 12}]
    for width in (40, 80, 200):
        text = yaml.safe_dump(docs, sort_keys=False, width=width)
        assert not fastyaml._starts_a_node(text), text
        assert same(fastyaml.load(text), pyyaml(text))
    for text in ("a:\n  > 0\n", "a: b # c\n  > 0\n", "a: b\n  > 0: c\n", "a: b\n> 0\n"):
        assert fastyaml._starts_a_node(text)  # a node start, a comment before, a key, too little indentation


@pytest.mark.parametrize(
    "text",
    [
        "a: &x 1\nb: *x\n",  # anchors and aliases
        "a: !!str 1\n",  # tags
        "<<: {a: 1}\nb: 2\n",  # merge keys
        "a: |\n  line\n",  # block scalars
        "a: >-\n  folded\n",
        'a: "tab\\there"\n',  # escapes
        "a:\tb\n",  # tabs
        "%YAML 1.1\n---\na: 1\n",  # directives
        "\ufeffa: 1\n",  # byte order mark
        "a: 1\na: 2\n",  # duplicate keys (PyYAML's path reports them)
        "1: a\n01: b\n",  # keys that become equal once typed
        "a: 1\n---\nb: 2\n",  # two documents
        "a: [1\n",  # broken
        "a: b: c\n",
        "a: =\n",  # PyYAML's value tag
        "a: \x07\n",  # a character PyYAML refuses
        "- :\n",  # an empty implicit key: rapidyaml reads {null: null}, PyYAML refuses it
        "!\n!\n",  # rapidyaml reads an empty document
        "k: 'yes\n  k: ':\n",  # a quoted key over two lines: rapidyaml reads the key "yes k: ", PyYAML refuses it
        'k:\n  "a\n  b": c\n',
    ],
)
def test_what_it_cannot_reproduce_is_declined_and_left_to_pyyaml(text: str, capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(fastyaml.Declined):
        fastyaml.load(text)
    assert capfd.readouterr().err == ""  # rapidyaml's own error print is silenced
    try:
        expected = parse_yaml(text, "f.yaml")
    except InvalidInputError as exc:
        with pytest.raises(InvalidInputError) as got:
            parse_yaml_fast(text, "f.yaml")
        assert [str(p) for p in got.value.problems] == [str(p) for p in exc.problems]
        return
    doc = parse_yaml_fast(text, "f.yaml")
    assert same(doc.data, expected.data) and doc.lines == expected.lines and doc.duplicates == expected.duplicates


def test_lines_of_a_fast_document_are_computed_on_demand_and_match_pyyaml() -> None:
    text = "table: t\ncolumns:\n  - name: id\n    type: int\n  - name: b\n    type: text\n"
    fast = parse_yaml_fast(text, "t.yaml")
    assert not fast.lines  # nothing computed yet
    exact = parse_yaml(text, "t.yaml")
    for path in [("columns", 1, "type"), ("columns", 0), ("table",), ("columns", 1, "missing")]:
        assert fast.line_of(path) == exact.line_of(path)
    assert fast.line_of(("columns", 1, "type")) == 6


# ---------------------------------------------------------------------------------------------------------
# property: random documents, written in many YAML styles, read alike (or declined)
# ---------------------------------------------------------------------------------------------------------

WORDS = st.sampled_from(TRICKY) | st.text(alphabet=string.ascii_letters + string.digits + " _-.:#'\"()[]{},!?&*|>@`%é", max_size=12)
SCALARS = (
    WORDS
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=False, width=64)
    | st.booleans()
    | st.none()
    | st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2100, 1, 1))
)
DATA = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(WORDS, inner, max_size=4), max_leaves=25)


@settings(max_examples=int(os.environ.get("FASTYAML_EXAMPLES", "400")), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=DATA,
    flow=st.sampled_from([None, True, False]),
    style=st.sampled_from([None, "'", '"']),
    width=st.sampled_from([20, 80, 10_000]),
)
def test_dumped_documents_read_alike(data: Any, flow: bool | None, style: str | None, width: int) -> None:
    text = yaml.safe_dump(data, default_flow_style=flow, default_style=style, width=width, allow_unicode=True)
    assert outcome(text) != "refused"


PLAIN_LINE = st.tuples(st.sampled_from(["", "  ", "    "]), st.sampled_from(["k: ", "- ", "- k: ", "k2: ", "yes: ", "1: ", "", "? ", "k: [", "- {k: ", "k: '", "k: \""]), WORDS)


@settings(max_examples=int(os.environ.get("FASTYAML_EXAMPLES", "400")), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(PLAIN_LINE, min_size=1, max_size=8))
def test_hand_written_plain_yaml_reads_alike_or_is_declined(lines: list[tuple[str, str, str]]) -> None:
    """Unquoted text as people type it: when PyYAML reads it, the fast path agrees or declines; when PyYAML
    refuses it, the fast path declines too (so PyYAML's error is what the user sees)."""
    outcome("".join(f"{indent}{prefix}{word}\n" for indent, prefix, word in lines))


@settings(max_examples=int(os.environ.get("FASTYAML_EXAMPLES", "400")), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=DATA, indent=st.sampled_from([None, 1, 4]), separators=st.sampled_from([None, (",", ":")]))
def test_json_documents_read_alike(data: Any, indent: int | None, separators: tuple[str, str] | None) -> None:
    """JSON is YAML: a spec set written by a program (`json.dumps`) reads as PyYAML reads it (`1e+20` stays a
    string, as in YAML 1.1)."""
    text = json.dumps(data, default=str, ensure_ascii=False, indent=indent, separators=separators)
    assert outcome(text) != "refused"


def test_json_text_reads_numbers_as_yaml_1_1_does() -> None:
    text = '{"table": "t", "columns": [{"name": "id", "type": "int", "nullable": false, "default": "0"}], "n": 1e3}'
    assert fastyaml.load(text) == {"table": "t", "columns": [{"name": "id", "type": "int", "nullable": False,
                                                              "default": "0"}], "n": "1e3"}  # fmt: skip
    with pytest.raises(fastyaml.Declined):
        fastyaml.load('{"a": 1, "a": 2}')  # PyYAML's path reports the repeated key


NODE_TEXT = st.text(alphabet=" \n-:?#'\"[]{},>|&*!%@`abx0", max_size=40)


@settings(max_examples=int(os.environ.get("FASTYAML_EXAMPLES", "400")) * 5, deadline=None)
@given(text=NODE_TEXT)
def test_node_starts_are_found_as_the_first_version_found_them(text: str) -> None:
    """`_starts_a_node` passes over empty collections where they stand, with `str.find` per character; the first
    version replaced them in a copy and scanned that with a regular expression (`_starts_a_node_in`)."""
    assert fastyaml._starts_a_node(text) == fastyaml._starts_a_node_in(fastyaml._EMPTY_FLOW.sub("x", text))


@settings(max_examples=int(os.environ.get("FASTYAML_EXAMPLES", "400")) * 5, deadline=None)
@given(word=WORDS | st.text(max_size=8) | st.from_regex(r"[-+.0-9_:eExXoObB]{0,12}", fullmatch=True))
def test_typed_plain_scalars_are_told_as_pyyamls_resolver_tells_them(word: str) -> None:
    """One joined regular expression per first character says what PyYAML's implicit resolvers say."""
    typed = fastyaml._typed_matchers().get(word[:1], fastyaml._resolved_typed)(word) is not None
    assert typed == (fastyaml._RESOLVER.resolve(yaml.nodes.ScalarNode, word, (True, False)) != fastyaml._STR_TAG)
