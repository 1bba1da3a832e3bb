"""JSON Schema compatibility by Confluent's rules: a structural diff of two schemas whose differences are
each compatible or not (the names are Confluent's `Difference.Type`s, so messages read the same).

`differences(original, update)` lists what changed from `original` to `update`; a change is harmless when a
reader holding `update` still accepts every document `original` accepted (BACKWARD with original = the old
schema; FORWARD swaps them). The content model decides what adding or removing a property means: an *open*
object (no `additionalProperties: false`, no schema for additional or pattern properties) already accepted
any value under a new name, so a property added there narrows what is accepted (incompatible) unless its
schema is empty; a *closed* one never held it, so an optional property may be added, a required one only
with a default; removing is the mirror image.

Covered: types (and type lists), objects (properties, required, additional/pattern properties, min/max
properties, dependencies), arrays (items, tuple items, additional items, min/max/unique items), strings,
numbers/integers, enum, const, not, anyOf/oneOf/allOf, and `$ref` within the same document. A schema that
refers to another subject (`references`) is refused by the caller: its rules are not implemented here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .errors import INVALID_SCHEMA, RegistryError

COMPATIBLE = frozenset({
    "ID_CHANGED", "DESCRIPTION_CHANGED", "TITLE_CHANGED", "DEFAULT_CHANGED", "SCHEMA_REMOVED", "TYPE_EXTENDED",
    "MAX_LENGTH_INCREASED", "MAX_LENGTH_REMOVED", "MIN_LENGTH_DECREASED", "MIN_LENGTH_REMOVED", "PATTERN_REMOVED",
    "MAXIMUM_INCREASED", "MAXIMUM_REMOVED", "MINIMUM_DECREASED", "MINIMUM_REMOVED",
    "EXCLUSIVE_MAXIMUM_INCREASED", "EXCLUSIVE_MAXIMUM_REMOVED", "EXCLUSIVE_MINIMUM_DECREASED",
    "EXCLUSIVE_MINIMUM_REMOVED", "MULTIPLE_OF_REDUCED", "MULTIPLE_OF_REMOVED",
    "REQUIRED_ATTRIBUTE_WITH_DEFAULT_ADDED", "REQUIRED_ATTRIBUTE_REMOVED", "DEPENDENCY_ARRAY_NARROWED",
    "DEPENDENCY_ARRAY_REMOVED", "DEPENDENCY_SCHEMA_REMOVED", "MAX_PROPERTIES_INCREASED", "MAX_PROPERTIES_REMOVED",
    "MIN_PROPERTIES_DECREASED", "MIN_PROPERTIES_REMOVED", "ADDITIONAL_PROPERTIES_ADDED",
    "ADDITIONAL_PROPERTIES_EXTENDED", "PROPERTY_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL",
    "REQUIRED_PROPERTY_WITH_DEFAULT_ADDED_TO_UNOPEN_CONTENT_MODEL", "OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL",
    "PROPERTY_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL", "PROPERTY_REMOVED_FROM_OPEN_CONTENT_MODEL",
    "PROPERTY_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
    "PROPERTY_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
    "MAX_ITEMS_INCREASED", "MAX_ITEMS_REMOVED", "MIN_ITEMS_DECREASED", "MIN_ITEMS_REMOVED", "UNIQUE_ITEMS_REMOVED",
    "ADDITIONAL_ITEMS_ADDED", "ADDITIONAL_ITEMS_EXTENDED", "ITEM_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL",
    "ITEM_ADDED_TO_CLOSED_CONTENT_MODEL", "ITEM_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL",
    "ITEM_REMOVED_FROM_OPEN_CONTENT_MODEL", "ITEM_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
    "ITEM_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", "ENUM_ARRAY_EXTENDED",
    "COMBINED_TYPE_EXTENDED", "PRODUCT_TYPE_NARROWED", "SUM_TYPE_EXTENDED", "NOT_TYPE_NARROWED",
})

_OBJECT_WORDS = ("properties", "additionalProperties", "required", "patternProperties", "minProperties",
                 "maxProperties", "dependencies", "propertyNames")
_ARRAY_WORDS = ("items", "additionalItems", "minItems", "maxItems", "uniqueItems", "contains")
_STRING_WORDS = ("minLength", "maxLength", "pattern", "format")
_NUMBER_WORDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")
_COMBINERS = ("allOf", "anyOf", "oneOf")


@dataclass(frozen=True)
class Difference:
    kind: str
    path: str

    @property
    def compatible(self) -> bool:
        return self.kind in COMPATIBLE


#: schema pairs one comparison may visit: unions inside unions are compared pairwise, so a hostile schema
#: could otherwise ask for an exponential amount of work
MAX_STEPS = 50_000


@dataclass
class _Diff:
    """One comparison: the root documents (for `$ref`), the pairs under way (recursive schemas), results,
    and the steps left (shared with every trial comparison made on the way)."""

    roots: tuple[Any, Any]
    found: list[Difference] = field(default_factory=list)
    active: set[tuple[int, int]] = field(default_factory=set)
    steps: list[int] = field(default_factory=lambda: [MAX_STEPS])

    def add(self, kind: str, path: str) -> None:
        self.found.append(Difference(kind, path or "#/"))

    def sub(self) -> _Diff:
        return _Diff(self.roots, [], self.active, self.steps)

    def step(self) -> None:
        self.steps[0] -= 1
        if self.steps[0] < 0:
            raise RegistryError(
                INVALID_SCHEMA, f"Invalid schema: too complex to compare (more than {MAX_STEPS:,} schema pairs)"
            )

    @property
    def compatible(self) -> bool:
        return all(d.compatible for d in self.found)


def differences(original: Any, update: Any) -> list[Difference]:
    diff = _Diff((original, update))
    _compare(diff, original, update, "#", "#")
    return diff.found


def incompatible(original: Any, update: Any) -> list[Difference]:
    return [d for d in differences(original, update) if not d.compatible]


# -- what a schema node is ------------------------------------------------------------------------------------


def _resolve(root: Any, node: Any) -> Any:
    """Follow `$ref`s within the document (`#`, `#/definitions/x`, `#/$defs/x`, any JSON pointer)."""
    seen = 0
    while isinstance(node, dict) and isinstance(node.get("$ref"), str):
        ref = node["$ref"]
        if not ref.startswith("#"):
            raise RegistryError(
                INVALID_SCHEMA,
                f"Compatibility of JSON schemas referring outside their document ($ref {ref!r}) is not implemented "
                "by this registry: set the subject's level to NONE",
            )
        target = root
        for part in [p for p in ref[1:].split("/") if p]:
            part = part.replace("~1", "/").replace("~0", "~")
            if isinstance(target, dict) and part in target:
                target = target[part]
            elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
                target = target[int(part)]
            else:
                raise RegistryError(INVALID_SCHEMA, f"Invalid schema: $ref {ref!r} does not resolve")
        node, seen = target, seen + 1
        if seen > 64:
            raise RegistryError(INVALID_SCHEMA, f"Invalid schema: $ref {ref!r} refers to itself")
    return node


def _kind(node: Any) -> str:
    """The schema class, as the Java JSON Schema library would build it."""
    if node is True or node == {}:
        return "empty"
    if node is False:
        return "false"
    if not isinstance(node, dict):
        raise RegistryError(INVALID_SCHEMA, f"Invalid schema: {node!r} is not a schema")
    if "enum" in node:
        return "enum"
    if "const" in node:
        return "const"
    types = node.get("type")
    if isinstance(types, list) or any(c in node for c in _COMBINERS):
        return "combined"
    if types == "object" or (types is None and any(w in node for w in _OBJECT_WORDS)):
        return "object"
    if types == "array" or (types is None and any(w in node for w in _ARRAY_WORDS)):
        return "array"
    if types == "string" or (types is None and any(w in node for w in _STRING_WORDS)):
        return "string"
    if types in ("number", "integer") or (types is None and any(w in node for w in _NUMBER_WORDS)):
        return "number"
    if types in ("boolean", "null"):
        return str(types)
    if "not" in node:
        return "not"
    return "empty"


def _combined(node: dict[str, Any]) -> tuple[str, list[Any]]:
    """A combined node as (criterion, subschemas): a type list is anyOf one schema per type; a combiner next
    to other keywords is allOf the rest and the combiner (as the Java library reads it)."""
    combiners = [c for c in _COMBINERS if c in node]
    rest = {k: v for k, v in node.items() if k not in combiners and k not in ("title", "description", "$id", "default")}
    if isinstance(node.get("type"), list) and not combiners:
        return "anyOf", [{**rest, "type": t} for t in node["type"]]
    if len(combiners) == 1 and not rest:
        subs = node[combiners[0]]
        return combiners[0], list(subs) if isinstance(subs, list) else []
    parts: list[Any] = [{c: node[c]} for c in combiners]
    if rest:
        parts.insert(0, rest)
    return "allOf", parts


# -- the comparison -------------------------------------------------------------------------------------------


def _compare(diff: _Diff, original: Any, update: Any, path: str, upath: str) -> None:
    if original is None and update is None:
        return
    if original is None:
        diff.add("SCHEMA_ADDED", path)
        return
    if update is None:
        diff.add("SCHEMA_REMOVED", path)
        return
    diff.step()
    original, update = _resolve(diff.roots[0], original), _resolve(diff.roots[1], update)
    pair = (id(original), id(update))
    if pair in diff.active:
        return  # a recursive schema: this pair is being compared further up
    kinds = (_kind(original), _kind(update))
    if kinds[0] != "combined" and kinds[1] == "combined":
        criterion, subs = _combined(update)
        if len(subs) == 1 or criterion in ("anyOf", "oneOf"):
            for sub in subs:
                trial = diff.sub()
                _compare(trial, original, sub, path, upath)
                if trial.compatible:
                    diff.found += trial.found
                    if len(subs) > 1:
                        diff.add("SUM_TYPE_EXTENDED", path)
                    return
    elif kinds[0] == "combined" and kinds[1] != "combined":
        criterion, subs = _combined(original)
        if len(subs) == 1:
            trial = diff.sub()
            _compare(trial, subs[0], update, path, upath)
            if trial.compatible:
                diff.found += trial.found
                return
    if kinds[0] != kinds[1]:
        if kinds[0] != "false" and kinds[1] != "empty":
            diff.add("TYPE_CHANGED", path)
        return
    if kinds[0] in ("empty", "false", "boolean", "null"):
        return
    diff.active.add(pair)
    try:
        _same_kind(diff, kinds[0], original, update, path, upath)
    finally:
        diff.active.discard(pair)


def _same_kind(diff: _Diff, kind: str, original: dict[str, Any], update: dict[str, Any], path: str, upath: str) -> None:
    for word, change in (("$id", "ID_CHANGED"), ("title", "TITLE_CHANGED"), ("description", "DESCRIPTION_CHANGED"),
                         ("default", "DEFAULT_CHANGED")):
        if original.get(word) != update.get(word):
            diff.add(change, path)
    if kind == "string":
        _bounds(diff, original, update, path, "maxLength", "MAX_LENGTH")
        _bounds(diff, original, update, path, "minLength", "MIN_LENGTH")
        if original.get("pattern") != update.get("pattern"):
            kind_of = "PATTERN_ADDED" if "pattern" not in original else (
                "PATTERN_REMOVED" if "pattern" not in update else "PATTERN_CHANGED")
            diff.add(kind_of, path + "/pattern")
    elif kind == "number":
        _number(diff, original, update, path)
    elif kind == "enum":
        old, new = original.get("enum") or [], update.get("enum") or []
        if old != new:
            diff.add("ENUM_ARRAY_EXTENDED" if all(v in new for v in old) else (
                "ENUM_ARRAY_NARROWED" if all(v in old for v in new) else "ENUM_ARRAY_CHANGED"), path + "/enum")
    elif kind == "const":
        if original.get("const") != update.get("const"):
            diff.add("CONST_CHANGED", path + "/const")
    elif kind == "not":
        # `not A` -> `not B` accepts at least as much when A accepts everything B does: compared reversed
        trial = diff.sub()
        _compare(trial, update.get("not"), original.get("not"), path + "/not", upath + "/not")
        if trial.found:
            diff.add("NOT_TYPE_NARROWED" if trial.compatible else "NOT_TYPE_EXTENDED", path)
    elif kind == "combined":
        _combined_diff(diff, original, update, path, upath)
    elif kind == "object":
        _object(diff, original, update, path, upath)
    elif kind == "array":
        _array(diff, original, update, path, upath)


def _bounds(diff: _Diff, original: dict[str, Any], update: dict[str, Any], path: str, word: str, name: str) -> None:
    """A numeric bound: added, removed, increased or decreased (which of these is harmless is in COMPATIBLE)."""
    old, new = original.get(word), update.get(word)
    if old == new or not all(isinstance(v, (int, float, type(None))) for v in (old, new)):
        return
    if old is None:
        diff.add(f"{name}_ADDED", f"{path}/{word}")
    elif new is None:
        diff.add(f"{name}_REMOVED", f"{path}/{word}")
    else:
        diff.add(f"{name}_{'INCREASED' if new > old else 'DECREASED'}", f"{path}/{word}")


def _number(diff: _Diff, original: dict[str, Any], update: dict[str, Any], path: str) -> None:
    old_int, new_int = original.get("type") == "integer", update.get("type") == "integer"
    if old_int != new_int:
        diff.add("TYPE_EXTENDED" if old_int else "TYPE_NARROWED", path)
    _bounds(diff, original, update, path, "maximum", "MAXIMUM")
    _bounds(diff, original, update, path, "minimum", "MINIMUM")
    for word, name in (("exclusiveMaximum", "EXCLUSIVE_MAXIMUM"), ("exclusiveMinimum", "EXCLUSIVE_MINIMUM")):
        if isinstance(original.get(word), bool) or isinstance(update.get(word), bool):  # draft 4's flags
            if bool(original.get(word)) != bool(update.get(word)):
                diff.add(f"{name}_{'ADDED' if update.get(word) else 'REMOVED'}", f"{path}/{word}")
        else:
            _bounds(diff, original, update, path, word, name)
    old, new = original.get("multipleOf"), update.get("multipleOf")
    if old != new:
        if old is None:
            diff.add("MULTIPLE_OF_ADDED", path + "/multipleOf")
        elif new is None:
            diff.add("MULTIPLE_OF_REMOVED", path + "/multipleOf")
        else:
            reduced = new != 0 and (old / new) == int(old / new)
            diff.add("MULTIPLE_OF_REDUCED" if reduced else (
                "MULTIPLE_OF_EXPANDED" if old != 0 and (new / old) == int(new / old) else "MULTIPLE_OF_CHANGED"),
                path + "/multipleOf")


def _combined_diff(diff: _Diff, original: dict[str, Any], update: dict[str, Any], path: str, upath: str) -> None:
    (old_c, old_subs), (new_c, new_subs) = _combined(original), _combined(update)
    if old_c != new_c:
        widened = new_c == "anyOf" or (new_c == "oneOf" and len(old_subs) == 1) or (
            new_c == "allOf" and len(old_subs) == 1 and len(new_subs) == 1)
        if not widened:
            diff.add("COMBINED_TYPE_CHANGED", path)
            return
        diff.add("COMBINED_TYPE_EXTENDED", path)
    old_subs, new_subs = _unique(old_subs), _unique(new_subs)
    if len(old_subs) != len(new_subs):
        grow = len(old_subs) < len(new_subs)
        product = new_c == "allOf"
        diff.add(("PRODUCT_TYPE_" if product else "SUM_TYPE_") + ("EXTENDED" if grow else "NARROWED"), path)
    edges: dict[int, list[tuple[int, list[Difference]]]] = {}
    for i, old in enumerate(old_subs):
        for j, new in enumerate(new_subs):
            trial = diff.sub()
            _compare(trial, old, new, f"{path}/{old_c}/{i}", f"{upath}/{new_c}/{j}")
            if trial.compatible:
                edges.setdefault(i, []).append((j, trial.found))
    matched = _match(edges)
    for found in matched.values():
        diff.found += found
    if len(matched) < min(len(old_subs), len(new_subs)):
        diff.add("COMBINED_TYPE_SUBSCHEMAS_CHANGED", path)


def _unique(items: list[Any]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if item not in out:
            out.append(item)
    return out


def _match(edges: dict[int, list[tuple[int, list[Difference]]]]) -> dict[int, list[Difference]]:
    """A maximum matching of old to new subschemas (augmenting paths; the lists are short)."""
    owner: dict[int, int] = {}

    def place(i: int, seen: set[int]) -> bool:
        for j, _ in edges.get(i, []):
            if j not in seen:
                seen.add(j)
                if j not in owner or place(owner[j], seen):
                    owner[j] = i
                    return True
        return False

    for i in edges:
        place(i, set())
    return {i: next(found for jj, found in edges[i] if jj == j) for j, i in owner.items()}


def _open(node: dict[str, Any]) -> bool:
    extra = node.get("additionalProperties", True)
    return not node.get("patternProperties") and (extra is True or extra == {})


def _partial(node: dict[str, Any], name: str) -> Any:
    """The schema a name not among the properties gets in a partially open object, or None (closed)."""
    for pattern, schema in (node.get("patternProperties") or {}).items():
        try:
            if re.search(pattern, name):
                return schema
        except re.error:
            continue
    extra = node.get("additionalProperties", True)
    return extra if isinstance(extra, dict) and extra else None


def _object(diff: _Diff, original: dict[str, Any], update: dict[str, Any], path: str, upath: str) -> None:
    old_props, new_props = original.get("properties") or {}, update.get("properties") or {}
    old_req, new_req = set(original.get("required") or []), set(update.get("required") or [])
    for name in old_props:
        if name in new_props:
            if name in old_req and name not in new_req:
                diff.add("REQUIRED_ATTRIBUTE_REMOVED", f"{path}/required/{name}")
            elif name not in old_req and name in new_req:
                with_default = isinstance(new_props[name], dict) and "default" in new_props[name]
                diff.add("REQUIRED_ATTRIBUTE_WITH_DEFAULT_ADDED" if with_default else "REQUIRED_ATTRIBUTE_ADDED",
                         f"{path}/required/{name}")
    for name in sorted(set(old_props) | set(new_props)):
        where = f"{path}/properties/{name}"
        if name not in new_props:
            if _open(update):
                diff.add("PROPERTY_REMOVED_FROM_OPEN_CONTENT_MODEL", where)
            elif (cover := _partial(update, name)) is not None:
                trial = diff.sub()
                _compare(trial, old_props[name], cover, where, upath)
                diff.found += trial.found
                diff.add("PROPERTY_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL" if trial.compatible
                         else "PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", where)
            else:
                diff.add("PROPERTY_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL" if old_props[name] is False
                         else "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL", where)
        elif name not in old_props:
            if _open(original):
                diff.add("PROPERTY_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL" if _kind(new_props[name]) == "empty"
                         and new_props[name] is not False else "PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL", where)
                continue
            if (cover := _partial(original, name)) is not None:
                trial = diff.sub()
                _compare(trial, cover, new_props[name], where, upath)
                diff.found += trial.found
                diff.add("PROPERTY_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL" if trial.compatible
                         else "PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", where)
            if name in new_req:
                with_default = isinstance(new_props[name], dict) and "default" in new_props[name]
                diff.add("REQUIRED_PROPERTY_WITH_DEFAULT_ADDED_TO_UNOPEN_CONTENT_MODEL" if with_default
                         else "REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL", where)
            else:
                diff.add("OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL", where)
        else:
            _compare(diff, old_props[name], new_props[name], where, f"{upath}/properties/{name}")
    _dependencies(diff, original, update, path, upath)
    _additional(diff, original, update, path, upath)
    _bounds(diff, original, update, path, "maxProperties", "MAX_PROPERTIES")
    _bounds(diff, original, update, path, "minProperties", "MIN_PROPERTIES")


def _dependencies(diff: _Diff, original: dict[str, Any], update: dict[str, Any], path: str, upath: str) -> None:
    old, new = original.get("dependencies") or {}, update.get("dependencies") or {}
    for name in sorted(set(old) | set(new)):
        where = f"{path}/dependencies/{name}"
        a, b = old.get(name), new.get(name)
        is_array = isinstance(a if a is not None else b, list)
        if b is None:
            diff.add("DEPENDENCY_ARRAY_REMOVED" if is_array else "DEPENDENCY_SCHEMA_REMOVED", where)
        elif a is None:
            diff.add("DEPENDENCY_ARRAY_ADDED" if is_array else "DEPENDENCY_SCHEMA_ADDED", where)
        elif isinstance(a, list) and isinstance(b, list):
            if set(a) != set(b):
                diff.add("DEPENDENCY_ARRAY_EXTENDED" if set(b) >= set(a) else (
                    "DEPENDENCY_ARRAY_NARROWED" if set(a) >= set(b) else "DEPENDENCY_ARRAY_CHANGED"), where)
        else:
            _compare(diff, a, b, where, f"{upath}/dependencies/{name}")


def _additional(diff: _Diff, original: dict[str, Any], update: dict[str, Any], path: str, upath: str) -> None:
    where = path + "/additionalProperties"
    old, new = original.get("additionalProperties", True), update.get("additionalProperties", True)
    old_permits, new_permits = old is not False, new is not False
    old_schema = old if isinstance(old, dict) and old else None
    new_schema = new if isinstance(new, dict) and new else None
    if old_permits != new_permits:
        diff.add("ADDITIONAL_PROPERTIES_ADDED" if new_permits else "ADDITIONAL_PROPERTIES_REMOVED", where)
    elif old_schema is None and new_schema is not None:
        diff.add("ADDITIONAL_PROPERTIES_NARROWED", where)
    elif new_schema is None and old_schema is not None:
        diff.add("ADDITIONAL_PROPERTIES_EXTENDED", where)
    elif old_schema is not None:
        _compare(diff, old_schema, new_schema, where, upath + "/additionalProperties")


def _array(diff: _Diff, original: dict[str, Any], update: dict[str, Any], path: str, upath: str) -> None:
    old_items, new_items = original.get("items"), update.get("items")
    old_all = None if isinstance(old_items, list) else old_items
    new_all = None if isinstance(new_items, list) else new_items
    _compare(diff, old_all, new_all, path + "/items", upath + "/items")
    old_tuple = old_items if isinstance(old_items, list) else []
    new_tuple = new_items if isinstance(new_items, list) else []
    for n in range(max(len(old_tuple), len(new_tuple))):
        where = f"{path}/items/{n}"
        if n < len(old_tuple) and n < len(new_tuple):
            _compare(diff, old_tuple[n], new_tuple[n], where, f"{upath}/items/{n}")
        elif n < len(old_tuple):
            _tuple_item(diff, old_tuple[n], update, where, removed=True)
        else:
            _tuple_item(diff, new_tuple[n], original, where, removed=False)
    where = path + "/additionalItems"
    old, new = original.get("additionalItems", True), update.get("additionalItems", True)
    old_schema = old if isinstance(old, dict) and old else None
    new_schema = new if isinstance(new, dict) and new else None
    if (old is not False) != (new is not False):
        diff.add("ADDITIONAL_ITEMS_REMOVED" if old is not False else "ADDITIONAL_ITEMS_ADDED", where)
    elif old_schema is None and new_schema is not None:
        diff.add("ADDITIONAL_ITEMS_NARROWED", where)
    elif new_schema is None and old_schema is not None:
        diff.add("ADDITIONAL_ITEMS_EXTENDED", where)
    elif old_schema is not None:
        _compare(diff, old_schema, new_schema, where, upath + "/additionalItems")
    _bounds(diff, original, update, path, "maxItems", "MAX_ITEMS")
    _bounds(diff, original, update, path, "minItems", "MIN_ITEMS")
    if bool(original.get("uniqueItems")) != bool(update.get("uniqueItems")):
        diff.add("UNIQUE_ITEMS_REMOVED" if original.get("uniqueItems") else "UNIQUE_ITEMS_ADDED", path + "/uniqueItems")


def _tuple_item(diff: _Diff, item: Any, other: dict[str, Any], where: str, removed: bool) -> None:
    """A tuple position only one side has, judged by the other side's content model for extra items."""
    extra = other.get("additionalItems", True)
    if extra is True or extra == {}:
        if removed:
            diff.add("ITEM_REMOVED_FROM_OPEN_CONTENT_MODEL", where)
        else:
            diff.add("ITEM_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL" if _kind(item) == "empty"
                     else "ITEM_ADDED_TO_OPEN_CONTENT_MODEL", where)
    elif isinstance(extra, dict):
        trial = diff.sub()
        if removed:
            _compare(trial, item, extra, where, where)
        else:
            _compare(trial, extra, item, where, where)
        diff.found += trial.found
        state = "IS_COVERED" if trial.compatible else "NOT_COVERED"
        diff.add(f"ITEM_{'REMOVED' if removed else 'ADDED'}_{state}_BY_PARTIALLY_OPEN_CONTENT_MODEL", where)
    elif removed:
        diff.add("ITEM_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL" if item is False
                 else "ITEM_REMOVED_FROM_CLOSED_CONTENT_MODEL", where)
    else:
        diff.add("ITEM_ADDED_TO_CLOSED_CONTENT_MODEL", where)


_TYPES = frozenset({"object", "array", "string", "number", "integer", "boolean", "null"})
_SCHEMA_MAPS = ("properties", "patternProperties", "definitions", "$defs")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf")
_SCHEMA_ONE = ("not", "additionalProperties", "additionalItems", "contains", "propertyNames", "if", "then", "else")


def validate(root: Any) -> None:
    """The keywords the rules read must have the shape the JSON Schema specification gives them (42201
    naming where otherwise), so a malformed schema is refused when registered, not when compared."""
    stack: list[tuple[Any, str]] = [(root, "#")]
    while stack:
        node, where = stack.pop()
        if isinstance(node, bool):
            continue
        if not isinstance(node, dict):
            raise RegistryError(INVALID_SCHEMA, f"Invalid JSON schema at {where}: a schema is an object or a boolean")
        kind = node.get("type")
        kinds = kind if isinstance(kind, list) else [kind] if kind is not None else []
        if not all(isinstance(k, str) and k in _TYPES for k in kinds):
            raise RegistryError(INVALID_SCHEMA, f"Invalid JSON schema at {where}/type: unknown type {kind!r}")
        required = node.get("required", [])
        if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
            raise RegistryError(INVALID_SCHEMA, f"Invalid JSON schema at {where}/required: a list of names expected")
        if "enum" in node and not isinstance(node["enum"], list):
            raise RegistryError(INVALID_SCHEMA, f"Invalid JSON schema at {where}/enum: a list expected")
        if "$ref" in node and not isinstance(node["$ref"], str):
            raise RegistryError(INVALID_SCHEMA, f"Invalid JSON schema at {where}/$ref: a string expected")
        for word in _SCHEMA_MAPS:
            if word in node:
                if not isinstance(node[word], dict):
                    raise RegistryError(INVALID_SCHEMA, f"Invalid JSON schema at {where}/{word}: an object expected")
                stack += [(v, f"{where}/{word}/{k}") for k, v in node[word].items()]
        for word in _SCHEMA_LISTS:
            if word in node:
                if not isinstance(node[word], list) or not node[word]:
                    raise RegistryError(INVALID_SCHEMA, f"Invalid JSON schema at {where}/{word}: a non-empty list expected")
                stack += [(v, f"{where}/{word}/{n}") for n, v in enumerate(node[word])]
        for word in _SCHEMA_ONE:
            if word in node:
                stack.append((node[word], f"{where}/{word}"))
        items = node.get("items")
        if isinstance(items, list):
            stack += [(v, f"{where}/items/{n}") for n, v in enumerate(items)]
        elif items is not None:
            stack.append((items, f"{where}/items"))
