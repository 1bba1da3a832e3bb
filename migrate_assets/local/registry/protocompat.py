"""Protobuf schemas: a parser for `.proto` text (proto2/proto3, the parts that shape the wire format) and
compatibility by Confluent's Protobuf rules.

Fields are matched by number, as the wire format does: adding or removing an optional field, renaming a
field, adding a message or an enum, changing enum constants and reordering messages are harmless; changing a
field's kind (scalar / message / map), its scalar type outside the wire-compatible groups (int32, int64,
uint32, uint64 and bool are one; sint32 and sint64; fixed32 and sfixed32; fixed64 and sfixed64; string and
bytes), or the message it names, removing a message, changing the package, adding or removing a `required`
field, and moving several fields into one oneof are not. The rules are symmetric, so BACKWARD and FORWARD
give the same answer (Confluent's do too).

Types imported from other files (`import`, a subject's `references`) are compared by name only. Services,
options, extensions and reserved ranges do not take part. `group` fields (proto2) are refused as invalid.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .errors import INVALID_SCHEMA, RegistryError

COMPATIBLE = frozenset({
    "MESSAGE_ADDED", "MESSAGE_MOVED", "ENUM_ADDED", "ENUM_REMOVED", "ENUM_CONST_ADDED", "ENUM_CONST_CHANGED",
    "ENUM_CONST_REMOVED", "FIELD_ADDED", "FIELD_REMOVED", "FIELD_NAME_CHANGED", "ONEOF_ADDED", "ONEOF_REMOVED",
    "ONEOF_FIELD_ADDED",
})
SCALAR_GROUPS = {
    **dict.fromkeys(("int32", "int64", "uint32", "uint64", "bool"), "GENERAL_NUMBER"),
    **dict.fromkeys(("sint32", "sint64"), "SIGNED_NUMBER"),
    **dict.fromkeys(("string", "bytes"), "STRING_OR_BYTES"),
    **dict.fromkeys(("fixed32", "sfixed32"), "FIXED32"),
    **dict.fromkeys(("fixed64", "sfixed64"), "FIXED64"),
    "float": "FLOAT",
    "double": "DOUBLE",
}

_TOKEN = re.compile(
    r"""\s+|//[^\n]*|/\*.*?\*/|(?P<str>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')"""
    r"""|(?P<word>[A-Za-z_.][A-Za-z0-9_.]*|[-+]?(?:0[xX][0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?))"""
    r"""|(?P<sym>[{}\[\]()<>;=,:-])""",
    re.S,
)


@dataclass
class Field:
    name: str
    number: int
    type: str
    label: str = ""
    #: (key, value) types for a map field
    map_types: tuple[str, str] | None = None


@dataclass
class Enum:
    name: str
    values: dict[int, str] = field(default_factory=dict)


@dataclass
class Message:
    name: str
    fields: list[Field] = field(default_factory=list)
    oneofs: dict[str, list[Field]] = field(default_factory=dict)
    messages: list[Message] = field(default_factory=list)
    enums: list[Enum] = field(default_factory=list)


@dataclass
class ProtoFile:
    package: str = ""
    messages: list[Message] = field(default_factory=list)
    enums: list[Enum] = field(default_factory=list)
    #: every message and enum by full name (`pkg.Outer.Inner`)
    types: dict[str, Message | Enum] = field(default_factory=dict)
    imports: list[str] = field(default_factory=list)


# -- parsing --------------------------------------------------------------------------------------------------


class _Tokens:
    def __init__(self, text: str) -> None:
        self.items: list[str] = []
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if m is None:
                raise _bad(f"unexpected character {text[pos]!r} at offset {pos}")
            pos = m.end()
            token = m.group("str") or m.group("word") or m.group("sym")
            if token:
                self.items.append(token)
        self.at = 0

    def peek(self) -> str:
        return self.items[self.at] if self.at < len(self.items) else ""

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if not token or (expected is not None and token != expected):
            raise _bad(f"expected {expected or 'more'!r}, found {token or 'the end'!r}")
        self.at += 1
        return token

    def skip_statement(self) -> None:
        """Up to and including the `;` (or a balanced `{...}`) ending the statement at this level."""
        depth = 0
        while True:
            token = self.take()
            if token in "{[(" and len(token) == 1:
                depth += 1
            elif token in "}])" and len(token) == 1:
                depth -= 1
                if depth == 0 and token == "}":
                    return
            elif token == ";" and depth == 0:
                return


def _bad(why: str) -> RegistryError:
    return RegistryError(INVALID_SCHEMA, f"Invalid schema (protobuf): {why}")


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _name(token: str) -> str:
    if not _IDENT.fullmatch(token):
        raise _bad(f"{token!r} is not a name")
    return token


def _number(token: str) -> int:
    try:
        return int(token, 0)
    except ValueError as exc:
        raise _bad(f"{token!r} is not a field number") from exc


#: imports every Protobuf registry resolves without a reference
WELL_KNOWN = ("google/protobuf/", "google/type/", "confluent/")


def parse(text: str) -> ProtoFile:
    tokens = _Tokens(text)
    proto = ProtoFile()
    while tokens.peek():
        word = tokens.peek()
        if word == "package":
            tokens.take()
            proto.package = tokens.take()
            tokens.take(";")
        elif word == "message":
            proto.messages.append(_message(tokens))
        elif word == "enum":
            proto.enums.append(_enum(tokens))
        elif word == "import":
            tokens.take()
            if tokens.peek() in ("public", "weak"):
                tokens.take()
            path = tokens.take()
            if path[:1] not in ("'", '"'):
                raise _bad(f"import of {path!r}: a quoted file name expected")
            proto.imports.append(path[1:-1])
            tokens.take(";")
        elif word in ("syntax", "edition", "option", "service", "extend"):
            tokens.skip_statement()
        elif word == ";":
            tokens.take()
        else:
            raise _bad(f"unexpected {word!r} at the top level")
    _index(proto, proto.package, proto.messages, proto.enums)
    return proto


def _index(proto: ProtoFile, scope: str, messages: list[Message], enums: list[Enum]) -> None:
    for enum in enums:
        proto.types[f"{scope}.{enum.name}".lstrip(".")] = enum
    for message in messages:
        name = f"{scope}.{message.name}".lstrip(".")
        proto.types[name] = message
        _index(proto, name, message.messages, message.enums)


def _message(tokens: _Tokens) -> Message:
    tokens.take("message")
    message = Message(_name(tokens.take()))
    tokens.take("{")
    while tokens.peek() != "}":
        word = tokens.peek()
        if word == "message":
            message.messages.append(_message(tokens))
        elif word == "enum":
            message.enums.append(_enum(tokens))
        elif word == "oneof":
            tokens.take()
            name = _name(tokens.take())
            tokens.take("{")
            members: list[Field] = []
            while tokens.peek() != "}":
                if tokens.peek() == "option":
                    tokens.skip_statement()
                elif tokens.peek() == ";":
                    tokens.take()
                else:
                    members.append(_field(tokens))
            tokens.take("}")
            message.oneofs[name] = members
        elif word in ("option", "reserved", "extensions", "extend"):
            tokens.skip_statement()
        elif word == ";":
            tokens.take()
        elif not word:
            raise _bad(f"message {message.name} is not closed")
        else:
            message.fields.append(_field(tokens))
    tokens.take("}")
    return message


def _field(tokens: _Tokens) -> Field:
    label = tokens.take() if tokens.peek() in ("optional", "required", "repeated") else ""
    kind = tokens.take()
    if kind == "group":
        raise _bad("proto2 groups are not supported")
    map_types = None
    if kind == "map":
        tokens.take("<")
        key = tokens.take()
        tokens.take(",")
        value = tokens.take()
        tokens.take(">")
        map_types = (key, value)
    name = _name(tokens.take())
    tokens.take("=")
    number = _number(tokens.take())
    if tokens.peek() == "[":
        while tokens.take() != "]":
            pass
    tokens.take(";")
    if not 1 <= number <= 536_870_911:
        raise _bad(f"field {name} has number {number}, outside 1..536870911")
    return Field(name, number, kind, label, map_types)


def _enum(tokens: _Tokens) -> Enum:
    tokens.take("enum")
    enum = Enum(_name(tokens.take()))
    tokens.take("{")
    while tokens.peek() != "}":
        if tokens.peek() in ("option", "reserved"):
            tokens.skip_statement()
        elif tokens.peek() == ";":
            tokens.take()
        elif not tokens.peek():
            raise _bad(f"enum {enum.name} is not closed")
        else:
            name = _name(tokens.take())
            tokens.take("=")
            number = _number(tokens.take())
            if tokens.peek() == "[":
                while tokens.take() != "]":
                    pass
            tokens.take(";")
            enum.values[number] = name
    tokens.take("}")
    return enum


# -- comparison -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Difference:
    kind: str
    path: str

    @property
    def compatible(self) -> bool:
        return self.kind in COMPATIBLE


#: message pairs one comparison may visit (a named type is compared once and its result reused, so this
#: only bounds very large files)
MAX_STEPS = 20_000


@dataclass
class _Diff:
    files: tuple[ProtoFile, ProtoFile]
    found: list[Difference] = field(default_factory=list)
    active: set[tuple[int, int]] = field(default_factory=set)
    steps: list[int] = field(default_factory=lambda: [MAX_STEPS])
    #: whether each named message pair already compared (full names, old and new) was compatible
    named: dict[tuple[str, str], bool] = field(default_factory=dict)

    def add(self, kind: str, path: str) -> None:
        self.found.append(Difference(kind, path))

    def step(self) -> None:
        self.steps[0] -= 1
        if self.steps[0] < 0:
            raise _bad(f"too complex to compare (more than {MAX_STEPS:,} message pairs)")


def differences(original: ProtoFile, update: ProtoFile) -> list[Difference]:
    diff = _Diff((original, update))
    if original.package != update.package:
        diff.add("PACKAGE_CHANGED", "#/")
    _types(diff, original.messages, original.enums, update.messages, update.enums,
           (original.package, update.package), "#")
    return diff.found


def incompatible(original: ProtoFile, update: ProtoFile) -> list[Difference]:
    return [d for d in differences(original, update) if not d.compatible]


def _types(diff: _Diff, old_messages: list[Message], old_enums: list[Enum], new_messages: list[Message],
           new_enums: list[Enum], scopes: tuple[str, str], path: str) -> None:
    old_index = {m.name: n for n, m in enumerate(old_messages)}
    new_index = {m.name: n for n, m in enumerate(new_messages)}
    by_name = ({m.name: m for m in old_messages}, {m.name: m for m in new_messages})
    for name in sorted(set(old_index) | set(new_index)):
        where = f"{path}/{name}"
        if name not in new_index:
            diff.add("MESSAGE_REMOVED", where)
        elif name not in old_index:
            diff.add("MESSAGE_ADDED", where)
        else:
            inner = (f"{scopes[0]}.{name}".lstrip("."), f"{scopes[1]}.{name}".lstrip("."))
            _message_diff(diff, by_name[0][name], by_name[1][name], inner, where)
            if old_index[name] != new_index[name]:
                diff.add("MESSAGE_MOVED", where)
    old_enum, new_enum = {e.name: e for e in old_enums}, {e.name: e for e in new_enums}
    for name in sorted(set(old_enum) | set(new_enum)):
        where = f"{path}/{name}"
        if name not in new_enum:
            diff.add("ENUM_REMOVED", where)
        elif name not in old_enum:
            diff.add("ENUM_ADDED", where)
        else:
            a, b = old_enum[name].values, new_enum[name].values
            for number in sorted(set(a) | set(b)):
                if number not in b:
                    diff.add("ENUM_CONST_REMOVED", f"{where}/{number}")
                elif number not in a:
                    diff.add("ENUM_CONST_ADDED", f"{where}/{number}")
                elif a[number] != b[number]:
                    diff.add("ENUM_CONST_CHANGED", f"{where}/{number}")


def _message_diff(diff: _Diff, old: Message, new: Message, scopes: tuple[str, str], path: str) -> None:
    diff.step()
    pair = (id(old), id(new))
    if pair in diff.active:
        return  # a recursive message: being compared further up
    diff.active.add(pair)
    try:
        _fields_diff(diff, old, new, scopes, path)
    finally:
        diff.active.discard(pair)
    _types(diff, old.messages, old.enums, new.messages, new.enums, scopes, path)


def _fields_diff(diff: _Diff, old: Message, new: Message, scopes: tuple[str, str], path: str) -> None:
    old_top = {f.number: f for f in old.fields}
    new_top = {f.number: f for f in new.fields}
    old_all = {**old_top, **{f.number: f for fs in old.oneofs.values() for f in fs}}
    new_all = {**new_top, **{f.number: f for fs in new.oneofs.values() for f in fs}}
    old_of = {f.number: name for name, fs in old.oneofs.items() for f in fs}
    new_of = {f.number: name for name, fs in new.oneofs.items() for f in fs}
    for name, members in new.oneofs.items():
        moved = sum(1 for f in members if f.number in old_top)
        existing = sum(1 for f in members if f.number not in old_top and f.number in old_of)
        if moved > 1:
            diff.add("MULTIPLE_FIELDS_MOVED_TO_ONEOF", f"{path}/{name}")
        elif moved == 1 and existing:
            diff.add("FIELD_MOVED_TO_EXISTING_ONEOF", f"{path}/{name}")
        for f in members:
            old_top.pop(f.number, None)  # moved into a oneof: not removed
    for name in sorted(set(old.oneofs) | set(new.oneofs)):
        where = f"{path}/{name}"
        if name not in new.oneofs:
            diff.add("ONEOF_REMOVED", where)
        elif name not in old.oneofs:
            diff.add("ONEOF_ADDED", where)
        else:
            a = {f.number: f for f in old.oneofs[name]}
            b = {f.number: f for f in new.oneofs[name]}
            for number in sorted(set(a) | set(b)):
                if number not in b:
                    if number not in new_all:
                        diff.add("ONEOF_FIELD_REMOVED", f"{where}/{number}")
                elif number not in a:
                    diff.add("ONEOF_FIELD_ADDED", f"{where}/{number}")
                else:
                    _field_diff(diff, a[number], b[number], scopes, f"{where}/{number}")
    for number in sorted(set(old_top) | set(new_top)):
        where = f"{path}/{number}"
        if number not in new_top:
            diff.add("REQUIRED_FIELD_REMOVED" if old_top[number].label == "required" else "FIELD_REMOVED", where)
        elif number not in old_top:
            diff.add("REQUIRED_FIELD_ADDED" if new_top[number].label == "required" else "FIELD_ADDED", where)
        else:
            _field_diff(diff, old_top[number], new_top[number], scopes, where)
    for number in sorted(set(old_all) & set(new_all)):
        top_both = number not in old_of and number not in new_of
        same_oneof = number in old_of and old_of[number] == new_of.get(number)
        if not (top_both or same_oneof):
            _field_diff(diff, old_all[number], new_all[number], scopes, f"{path}/{number}")


def _resolve(proto: ProtoFile, scope: str, name: str) -> tuple[str, Message | Enum | None]:
    """A type name as written in `scope` -> (full name, its definition; None when defined elsewhere)."""
    if name.startswith("."):
        return name[1:], proto.types.get(name[1:])
    parts = scope.split(".") if scope else []
    while True:
        candidate = ".".join(parts + [name])
        if candidate in proto.types:
            return candidate, proto.types[candidate]
        if not parts:
            return name, None
        parts.pop()


def _kind(proto: ProtoFile, scope: str, type_name: str, map_types: tuple[str, str] | None) -> tuple[str, str]:
    """(kind, detail): SCALAR with its wire group (an enum is a varint), MAP, or MESSAGE with its name."""
    if map_types is not None:
        return "MAP", ""
    if type_name in SCALAR_GROUPS:
        return "SCALAR", SCALAR_GROUPS[type_name]
    full, found = _resolve(proto, scope, type_name)
    if isinstance(found, Enum):
        return "SCALAR", "GENERAL_NUMBER"
    return "MESSAGE", full


def _field_diff(diff: _Diff, old: Field, new: Field, scopes: tuple[str, str], path: str) -> None:
    if old.name != new.name:
        diff.add("FIELD_NAME_CHANGED", path)
    _type_diff(diff, (old.type, old.map_types), (new.type, new.map_types), scopes, path)


def _type_diff(diff: _Diff, old: tuple[str, tuple[str, str] | None], new: tuple[str, tuple[str, str] | None],
               scopes: tuple[str, str], path: str) -> None:
    (old_kind, old_detail) = _kind(diff.files[0], scopes[0], *old)
    (new_kind, new_detail) = _kind(diff.files[1], scopes[1], *new)
    if old_kind != new_kind:
        diff.add("FIELD_KIND_CHANGED", path)
    elif old_kind == "SCALAR":
        if old_detail != new_detail:
            diff.add("FIELD_SCALAR_KIND_CHANGED", path)
    elif old_kind == "MAP":
        assert old[1] is not None and new[1] is not None
        _type_diff(diff, (old[1][0], None), (new[1][0], None), scopes, path + "/key")
        _type_diff(diff, (old[1][1], None), (new[1][1], None), scopes, path + "/value")
    else:
        _named_diff(diff, old_detail, new_detail, path)


def _local(proto: ProtoFile, full: str) -> str:
    return full[len(proto.package) + 1:] if proto.package and full.startswith(proto.package + ".") else full


def _named_diff(diff: _Diff, old_full: str, new_full: str, path: str) -> None:
    old_def, new_def = diff.files[0].types.get(old_full), diff.files[1].types.get(new_full)
    if _local(diff.files[0], old_full) != _local(diff.files[1], new_full):
        diff.add("FIELD_NAMED_TYPE_CHANGED", path)
        return
    if not isinstance(old_def, Message) or not isinstance(new_def, Message):
        return  # defined in another file on either side: compared by name only
    key = (old_full, new_full)
    if key in diff.named:  # compared before: its differences were reported there, only the verdict here
        compatible = diff.named[key]
    else:
        sub = _Diff(diff.files, [], diff.active, diff.steps, diff.named)
        _message_diff(sub, old_def, new_def, key, path)
        compatible = diff.named[key] = all(d.compatible for d in sub.found)
        diff.found += sub.found
    if not compatible:
        diff.add("FIELD_NAMED_TYPE_CHANGED", path)
