"""The Confluent REST API as a Starlette app over `Store`.

Handlers only translate HTTP to store calls; every rule (ids, versions, deletes, compatibility) lives in the
store so it holds whatever the transport. Store calls run in the thread pool: they block on SQLite and on the
compatibility checker, and the event loop must keep answering readiness probes meanwhile.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from migrate_assets import __version__

from . import compat, contexts
from .errors import (
    INVALID_SCHEMA,
    INVALID_SUBJECT,
    INVALID_VERSION,
    STORE_ERROR,
    UNPROCESSABLE_ENTITY,
    RegistryError,
)
from .limits import Limits, too_large
from .store import LATEST, Store

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/vnd.schemaregistry.v1+json"

_MAX_VERSION = 2**31 - 1
#: an oversized body is read (and dropped) up to this many times the limit before the connection is closed
_DRAIN_FACTOR = 64
T = TypeVar("T")


class RegistryResponse(JSONResponse):
    media_type = MEDIA_TYPE


def _error(status: int, code: int, message: str) -> Response:
    return RegistryResponse({"error_code": code, "message": message}, status_code=status)


def _flag(request: Request, name: str) -> bool:
    """Query flags as both clients send them: `true`/`false`, and Python's `True`/`False`."""
    return request.query_params.get(name, "false").strip().lower() == "true"


def _version(raw: str) -> int | None:
    """`latest` (or -1) -> LATEST, else a version number in [1, 2^31-1]; anything else is 42202."""
    if raw == "latest" or raw == "-1":
        return LATEST
    try:
        number = int(raw)
    except ValueError:
        number = 0
    if not 1 <= number <= _MAX_VERSION:
        raise RegistryError(
            INVALID_VERSION,
            f"The specified version '{raw}' is not a valid version id. "
            f'Allowed values are between [1, {_MAX_VERSION}] and the string "latest"',
        )
    return number


def _page(request: Request, items: list[T]) -> list[T]:
    """`offset` and `limit` as Confluent reads them: limit -1 (the default) or 0 means all."""
    try:
        offset = int(request.query_params.get("offset", "0"))
        limit = int(request.query_params.get("limit", "-1"))
    except ValueError as exc:
        raise RegistryError(UNPROCESSABLE_ENTITY, f"offset and limit must be whole numbers: {exc}") from exc
    offset = max(offset, 0)
    return items[offset:] if limit <= 0 else items[offset:offset + limit]


def _subject(request: Request) -> str:
    """The path's subject in its normal qualified spelling (`:.:x` is `x`)."""
    return contexts.normal(request.path_params["subject"])


def _valid_subject(subject: str, settings: bool = False) -> str:
    """Confluent's rule: not empty, no control character (one would also split the log line). Levels and
    modes may also be set on a context itself (`:.ctx:`, an empty subject part)."""
    bad = any(ord(ch) < 32 or 127 <= ord(ch) < 160 for ch in subject)
    qualified = contexts.split(subject)
    # Confluent's reserved names: `__GLOBAL` and `__EMPTY` subjects, and the `.__GLOBAL` context outside settings
    reserved = qualified.name in ("__GLOBAL", "__EMPTY") or (qualified.context == ".__GLOBAL" and not settings)
    if bad or reserved or not subject or qualified.context == contexts.WILDCARD or not (qualified.name or settings):
        raise RegistryError(INVALID_SUBJECT, f"The specified subject is not valid: {subject!r}")
    return subject


def _optional_int(body: dict[str, Any], name: str, unset: tuple[int, ...]) -> int | None:
    value = body.get(name)
    if value is None or value in unset:
        return None
    if type(value) is not int or value < 1:
        raise RegistryError(UNPROCESSABLE_ENTITY, f'"{name}" must be a whole number of at least 1, got {value!r}')
    return value


#: config fields Confluent accepts beside `compatibility`, and the value each may have here (its default)
_CONFIG_DEFAULTS: dict[str, object] = {
    "normalize": False, "validateFields": False, "validateRules": False, "alias": None,
    "compatibilityGroup": None, "defaultMetadata": None, "overrideMetadata": None,
    "defaultRuleSet": None, "overrideRuleSet": None,
}


def _refuse_unsupported_config(body: dict[str, Any]) -> None:
    """A config this registry does not apply (registry-side normalizing, aliases, groups, metadata, rules)
    is refused, not stored and ignored: the caller would believe it in force."""
    given = sorted(k for k, default in _CONFIG_DEFAULTS.items() if body.get(k, default) not in (default, None))
    if given:
        raise RegistryError(
            UNPROCESSABLE_ENTITY, f"Config {', '.join(given)} is not supported by this registry (only compatibility)"
        )


class _NoTrailingSlash:
    """`/x/` is `/x` (the Java client sends `.../versions/` for "all versions"): no 307 round trip."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and len(path) > 1 and path.endswith("/"):
            scope = {**scope, "path": path.rstrip("/") or "/", "raw_path": None}
        await self.app(scope, receive, send)


async def _read_capped(request: Request, limits: Limits) -> bytes:
    """The body, or 413 once it passes `max_body_bytes` (by its Content-Length or as it streams in). The
    rest of an oversized body is read and dropped (up to a bound) so the client gets the answer rather than
    a reset connection; nothing beyond the limit is kept."""
    declared = request.headers.get("content-length", "")
    size = int(declared) if declared.isdigit() else None
    chunks: list[bytes] = []
    received = 0
    refused = size is not None and size > limits.max_body_bytes
    async for chunk in request.stream():
        received += len(chunk)
        if received > limits.max_body_bytes:
            refused = True
            chunks.clear()
        if refused:
            if received > _DRAIN_FACTOR * limits.max_body_bytes:
                break
            continue
        chunks.append(chunk)
    if refused:
        raise too_large(size if size is not None else received, limits)
    return b"".join(chunks)


async def _body(request: Request, limits: Limits) -> dict[str, Any]:
    raw = await _read_capped(request, limits)
    try:
        body = json.loads(raw or b"null")
    except ValueError as exc:
        raise RegistryError(UNPROCESSABLE_ENTITY, f"Unrecognized JSON in request body: {exc}") from exc
    if not isinstance(body, dict):
        raise RegistryError(UNPROCESSABLE_ENTITY, "Request body must be a JSON object")
    return body


def create_app(db_path: str | Path, busy_timeout: float = 10.0, limits: Limits | None = None) -> ASGIApp:
    """The registry app, its state in the SQLite file `db_path` (created if absent)."""
    store = Store(db_path, busy_timeout)
    limits = limits or Limits()

    async def schema_body(request: Request) -> tuple[compat.ParsedSchema, dict[str, Any]]:
        body = await _body(request, limits)
        if "schema" not in body:
            raise RegistryError(UNPROCESSABLE_ENTITY, 'Request body has no "schema" field')
        parsed = await run_in_threadpool(
            store.parse, body["schema"], body.get("schemaType"), body.get("references"), limits,
            _subject(request),
        )
        return parsed, body

    async def schema_only(request: Request) -> compat.ParsedSchema:
        return (await schema_body(request))[0]

    async def call(fn: Callable[..., T], *args: Any) -> T:
        return await run_in_threadpool(fn, *args)

    def ok(content: Any) -> Response:
        return RegistryResponse(content)

    async def root(request: Request) -> Response:
        return ok({})

    def deleted_only(request: Request) -> bool:
        """Confluent's `deletedOnly`; the Python client's `deleted_only` too."""
        return _flag(request, "deletedOnly") or _flag(request, "deleted_only")

    async def list_subjects(request: Request) -> Response:
        # Confluent: every context unless a prefix is given ("" is the default context only)
        prefix = request.query_params.get("subjectPrefix", ":*:")
        found = await call(store.subjects, _flag(request, "deleted"), deleted_only(request), prefix)
        return ok(_page(request, found))

    async def list_versions(request: Request) -> Response:
        subject = _subject(request)
        found = await call(store.versions, subject, _flag(request, "deleted"), deleted_only(request))
        return ok(_page(request, found))

    async def list_schemas(request: Request) -> Response:
        rows = await call(
            store.all_versions, request.query_params.get("subjectPrefix", ""), _flag(request, "deleted"),
            _flag(request, "latestOnly"),
        )
        return ok(_page(request, [r.to_json() for r in rows]))

    async def cluster_id(request: Request) -> Response:
        return ok({"id": "", "scope": {"path": [], "clusters": {}}})  # one local registry, no Kafka cluster

    async def server_version(request: Request) -> Response:
        return ok({"version": __version__, "commitId": ""})

    async def list_contexts(request: Request) -> Response:
        return ok(_page(request, await call(store.context_names)))

    async def register(request: Request) -> Response:
        subject = _valid_subject(_subject(request))
        parsed, body = await schema_body(request)
        schema_id = _optional_int(body, "id", (-1, 0))
        version = _optional_int(body, "version", (-1, 0))
        row = await call(store.register, subject, parsed, _flag(request, "normalize"), schema_id, version)
        log.info("registered subject=%r version=%s id=%s", subject, row.version, row.id)
        # exactly what Confluent 7.0 answers: the Java client of that line may not ignore unknown keys
        return ok({"id": row.id})

    async def get_version(request: Request) -> Response:
        subject, version = _subject(request), _version(request.path_params["version"])
        return ok((await call(store.version, subject, version, _flag(request, "deleted"))).to_json())

    async def get_raw_schema(request: Request) -> Response:
        subject, version = _subject(request), _version(request.path_params["version"])
        row = await call(store.version, subject, version, _flag(request, "deleted"))
        return Response(row.schema, media_type=MEDIA_TYPE)

    async def referenced_by(request: Request) -> Response:
        subject, version = _subject(request), _version(request.path_params["version"])
        return ok(_page(request, await call(store.referenced_by, subject, version)))

    async def delete_version(request: Request) -> Response:
        subject, version = _subject(request), _version(request.path_params["version"])
        return ok(await call(store.delete_version, subject, version, _flag(request, "permanent")))

    async def lookup(request: Request) -> Response:
        subject = _subject(request)
        parsed = await schema_only(request)
        row = await call(
            store.lookup, subject, parsed, _flag(request, "normalize"), _flag(request, "deleted")
        )
        return ok(row.to_json())

    async def delete_subject(request: Request) -> Response:
        subject = _subject(request)
        return ok(await call(store.delete_subject, subject, _flag(request, "permanent")))

    async def schema_types(request: Request) -> Response:
        return ok(list(compat.SCHEMA_TYPES))

    def id_subject(request: Request) -> str | None:
        """`?subject=`: which context an id is looked up in (Confluent's rule, see `Store._row_by_id`)."""
        given = request.query_params.get("subject")
        return None if given is None else contexts.normal(given)

    async def schema_by_id(request: Request) -> Response:
        return ok(await call(
            store.schema_by_id, request.path_params["id"], _flag(request, "fetchMaxId"), id_subject(request)
        ))

    async def raw_schema_by_id(request: Request) -> Response:
        body = await call(store.schema_by_id, request.path_params["id"], False, id_subject(request))
        return Response(str(body["schema"]), media_type=MEDIA_TYPE)

    async def id_uses(request: Request) -> list[tuple[str, int]]:
        """The subject-versions of a schema id in the context `subject` selects (every subject there)."""
        return await call(
            store.schema_versions, request.path_params["id"], _flag(request, "deleted"), id_subject(request)
        )

    async def schema_versions(request: Request) -> Response:
        return ok(_page(request, [{"subject": s, "version": v} for s, v in await id_uses(request)]))

    async def schema_subjects(request: Request) -> Response:
        return ok(_page(request, sorted({s for s, _ in await id_uses(request)})))

    async def test_compatibility(request: Request) -> Response:
        subject = _subject(request)
        raw_version = request.path_params.get("version")
        version = None if raw_version is None else _version(raw_version)
        verbose = _flag(request, "verbose")
        try:
            parsed = await schema_only(request)
            messages = await call(store.test_compatibility, subject, parsed, version, raw_version is None)
        except RegistryError as exc:
            # Confluent: with verbose, an invalid schema is an answer (not compatible, and why), not an error
            if not (verbose and exc.error_code == INVALID_SCHEMA):
                raise
            messages = [exc.message]
        answer: dict[str, Any] = {"is_compatible": not messages}
        if verbose:
            answer["messages"] = messages
        return ok(answer)

    def settings_subject(request: Request) -> str | None:
        raw = request.path_params.get("subject")
        return None if raw is None else contexts.normal(raw)

    async def config(request: Request) -> Response:
        subject = settings_subject(request)
        if request.method == "GET":
            level = await call(store.level, subject, _flag(request, "defaultToGlobal"))
            return ok({"compatibilityLevel": level})
        if request.method == "DELETE":
            return ok({"compatibilityLevel": await call(store.delete_level, subject)})
        if subject is not None:
            _valid_subject(subject, settings=True)
        body = await _body(request, limits)
        _refuse_unsupported_config(body)
        if body.get("compatibility") is None:
            return ok({})  # Confluent: a request without a level changes nothing and echoes nothing
        level = compat.check_level(body["compatibility"])
        await call(store.set_level, subject, level)
        return ok({"compatibility": level})

    async def mode(request: Request) -> Response:
        subject = settings_subject(request)
        if request.method == "GET":
            return ok({"mode": await call(store.mode, subject, _flag(request, "defaultToGlobal"))})
        if request.method == "DELETE":
            return ok({"mode": await call(store.delete_mode, subject, _flag(request, "recursive"))})
        if subject is not None:
            _valid_subject(subject, settings=True)
        wanted = (await _body(request, limits)).get("mode")
        return ok({"mode": await call(store.set_mode, subject, wanted, _flag(request, "force"))})

    routes = [
        Route("/", root),
        Route("/subjects", list_subjects),
        Route("/subjects/{subject}/versions", list_versions, methods=["GET"]),
        Route("/subjects/{subject}/versions", register, methods=["POST"]),
        Route("/subjects/{subject}/versions/{version}", get_version, methods=["GET"]),
        Route("/subjects/{subject}/versions/{version}", delete_version, methods=["DELETE"]),
        Route("/subjects/{subject}/versions/{version}/schema", get_raw_schema),
        Route("/subjects/{subject}/versions/{version}/referencedby", referenced_by),
        Route("/subjects/{subject}", lookup, methods=["POST"]),
        Route("/subjects/{subject}", delete_subject, methods=["DELETE"]),
        Route("/schemas", list_schemas, methods=["GET"]),
        Route("/contexts", list_contexts, methods=["GET"]),
        Route("/v1/metadata/id", cluster_id, methods=["GET"]),
        Route("/v1/metadata/version", server_version, methods=["GET"]),
        Route("/schemas/types", schema_types),
        Route("/schemas/ids/{id:int}", schema_by_id),
        Route("/schemas/ids/{id:int}/schema", raw_schema_by_id),
        Route("/schemas/ids/{id:int}/versions", schema_versions),
        Route("/schemas/ids/{id:int}/subjects", schema_subjects),
        Route("/compatibility/subjects/{subject}/versions", test_compatibility, methods=["POST"]),
        Route("/compatibility/subjects/{subject}/versions/{version}", test_compatibility, methods=["POST"]),
        Route("/config", config, methods=["GET", "PUT", "DELETE"]),
        Route("/config/{subject}", config, methods=["GET", "PUT", "DELETE"]),
        Route("/mode", mode, methods=["GET", "PUT", "DELETE"]),
        Route("/mode/{subject}", mode, methods=["GET", "PUT", "DELETE"]),
    ]

    async def on_registry_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RegistryError)
        return _error(exc.http_status, exc.error_code, exc.message)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return _error(exc.status_code, exc.status_code, f"HTTP {exc.status_code} {exc.detail}")

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _error(500, STORE_ERROR, f"Internal error: {exc}")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        store.close()

    app = Starlette(
        routes=routes,
        exception_handlers={
            RegistryError: on_registry_error,
            HTTPException: on_http_error,
            Exception: on_unexpected,
        },
        lifespan=lifespan,
    )
    return _NoTrailingSlash(contexts.ContextPaths(app))
