"""Schema contexts: `:.ctx:subject` names, each context its own group of subjects and schema ids.

A subject qualified as `:.name:subject` lives in context `.name`; an unqualified one, or one written
`:.:subject`, in the default context `.`. `:*:` stands for every context in a `subjectPrefix`. Subjects are
stored in their normal form (`:.:x` is `x`, `:.ctx` is `:.ctx:`), so every spelling names one subject.
A context's own compatibility level and mode are kept under the subject `:.ctx:` (empty subject part), and
apply to its subjects that have none of their own, before the global ones.

`ContextPaths` serves Confluent's URL form of a context, `/contexts/.ctx/subjects/...`, by rewriting the
request to the qualified form, so a client configured with `http://registry/contexts/.ctx` works unchanged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

from starlette.types import ASGIApp, Receive, Scope, Send

DEFAULT = "."
WILDCARD = "*"
_PREFIX = ":."


@dataclass(frozen=True)
class Qualified:
    context: str
    name: str

    @property
    def subject(self) -> str:
        """The normal spelling: bare in the default context, `:.ctx:name` elsewhere."""
        return self.name if self.context == DEFAULT else f":{self.context}:{self.name}"

    @property
    def context_key(self) -> str:
        """Where the context's own level and mode are kept (the global ones for the default context)."""
        return "" if self.context == DEFAULT else f":{self.context}:"


def split(subject: str) -> Qualified:
    """`:.ctx:name` -> (.ctx, name); `:.ctx` -> (.ctx, ""); `:*:name` -> (*, name); else (., subject)."""
    if subject.startswith(_PREFIX):
        end = subject.find(":", len(_PREFIX))
        if end < 0:
            return Qualified(subject[1:], "")
        return Qualified(subject[1:end], subject[end + 1:])
    if subject.startswith(":*:"):
        return Qualified(WILDCARD, subject[3:])
    return Qualified(DEFAULT, subject)


def normal(subject: str) -> str:
    return split(subject).subject


def context_of(subject: str) -> str:
    return split(subject).context


def with_parent(reference: str, parent: str) -> str:
    """A reference's subject as stored: an unqualified one lives in the context of the schema naming it."""
    ref = split(reference)
    if ref.context == DEFAULT and not reference.startswith(":.:"):
        return Qualified(context_of(parent), ref.name).subject
    return ref.subject


def in_prefix(subject: str, prefix: str) -> bool:
    """Whether `subject` is listed for a `subjectPrefix`: the prefix's context (every one for `:*:`), and
    a subject part starting with the prefix's."""
    want, have = split(prefix), split(subject)
    return (want.context in (WILDCARD, have.context)) and have.name.startswith(want.name)


def context_name(raw: str) -> str:
    """A context as written in a URL (`.ctx`, `ctx`, `:.ctx:`, `:.:`) -> its name (`.ctx`, `.`)."""
    name = raw.strip(":") if raw.startswith(":") else raw
    if ":" in name:
        raise ValueError(f"Context name cannot contain a colon: {raw!r}")
    return name if name.startswith(".") else "." + name


class ContextPaths:
    """`/contexts/{ctx}/...` -> the same request with every subject qualified by `ctx` (as Confluent's
    context filter does). `/contexts` itself, and paths that name a qualified subject already, pass."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and path.startswith("/contexts/"):
            parts = path.split("/")[2:]
            try:
                context = context_name(parts[0])
            except ValueError as exc:
                await _bad_request(send, str(exc))
                return
            query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
            new_path, query = _rewrite(Qualified(context, "").subject, parts[1:], query)
            scope = {**scope, "path": new_path, "raw_path": None,
                     "query_string": urlencode(query).encode("latin-1")}
        await self.app(scope, receive, send)


def _qualified(prefix: str, subject: str) -> str:
    return subject if subject.startswith((_PREFIX, ":*:")) else prefix + subject


def _rewrite(prefix: str, rest: list[str], query: list[tuple[str, str]]) -> tuple[str, list[tuple[str, str]]]:
    """The unprefixed path and query for a request under the context whose subjects start with `prefix`."""
    out: list[str] = []
    subject_next = False
    settings = bool(rest) and rest[0] in ("config", "mode")
    for n, part in enumerate(rest):
        if subject_next:
            part = _qualified(prefix, part)
            subject_next = False
        elif part == "subjects" or (n == 0 and settings):
            subject_next = True
        out.append(part)
    if settings and subject_next and prefix:
        out.append(prefix)  # /contexts/.ctx/config is the context's own level
    path = "/" + "/".join(p for p in out if p != "")
    if path == "/" and prefix:
        path = "/contexts/" + prefix
    if path.startswith("/schemas/ids"):
        subject = next((v for k, v in query if k == "subject"), "")
        query = [(k, v) for k, v in query if k != "subject"] + [("subject", _qualified(prefix, subject))]
    elif path in ("/schemas", "/subjects"):
        given = [v for k, v in query if k == "subjectPrefix"] or [""]
        query = [(k, v) for k, v in query if k != "subjectPrefix"]
        query += [("subjectPrefix", _qualified(prefix, p)) for p in given]
    return path, query


async def _bad_request(send: Send, message: str) -> None:
    body = json.dumps({"error_code": 400, "message": message}).encode()
    await send({"type": "http.response.start", "status": 400,
                "headers": [(b"content-type", b"application/vnd.schemaregistry.v1+json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
