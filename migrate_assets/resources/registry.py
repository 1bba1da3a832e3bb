"""A Confluent-compatible schema registry as the evolution engine needs it (`RegistryLayer`).

Built on confluent-kafka's `SchemaRegistryClient`, with two deliberate departures:

* its caches are cleared before every read that must be fresh (the latest version, and register/lookup):
  the engine compares fingerprints taken minutes apart and other writers (the AvroConverter) register too;
* the compatibility test goes through httpx, because the client's verbose call returns only a bool and the
  engine must keep the registry's messages. The all-versions form is used, so TRANSITIVE levels are checked
  against every live version, exactly as a register would be.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TypeVar
from urllib.parse import quote

import httpx
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.common._httpx_compat import httpx as client_httpx
from confluent_kafka.schema_registry.error import SchemaRegistryError

from migrate_assets.errors import (
    IncompatibleSchemaError,
    LayerObjectNotFoundError,
    LayerRequestError,
    LayerUnreachableError,
    TransientError,
)
from migrate_assets.evolution.layers import CompatibilityResult, Layer, RegistryVersion
from migrate_assets.redact import dsn_secrets, remember

LAYER = Layer.SCHEMA_REGISTRY
MEDIA_TYPE = "application/vnd.schemaregistry.v1+json"

SUBJECT_NOT_FOUND = 40401
VERSION_NOT_FOUND = 40402
VERSION_SOFT_DELETED = 40406
SUBJECT_LEVEL_NOT_CONFIGURED = 40408

T = TypeVar("T")
#: the client's transport is httpx2 when installed (else httpx): its connection errors are either family
_TRANSPORT_ERRORS: tuple[type[Exception], ...] = tuple({httpx.TransportError, client_httpx.TransportError})


class SchemaRegistryAdapter:
    """`RegistryLayer` for the registry at `url`. It registers Avro schemas; `latest` reports a subject's
    type and references as they are, so pre-flight can refuse JSON Schema, Protobuf and referencing Avro
    subjects instead of treating their text as a self-contained Avro schema."""

    def __init__(
        self, url: str, timeout: float = 10.0, max_retries: int = 2, retry_wait: float = 0.2
    ) -> None:
        self.url = url.rstrip("/")
        remember(*dsn_secrets(self.url))  # userinfo in the URL: never in a message
        self.timeout = timeout
        self._http = httpx.Client(timeout=timeout)  # pooled: a client per call costs ~50 ms
        self.client = SchemaRegistryClient(
            {
                "url": self.url,
                "timeout": timeout,
                "max.retries": max_retries,
                "retries.wait.ms": int(retry_wait * 1000),
                "retries.max.wait.ms": int(retry_wait * 1000 * 8),
            }
        )

    # -- error mapping ---------------------------------------------------------------------------------------

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except _TRANSPORT_ERRORS as exc:
            raise LayerUnreachableError(LAYER, f"{what}: {type(exc).__name__}: {exc}") from exc
        except SchemaRegistryError as exc:
            if exc.http_status_code >= 500 or exc.http_status_code in (408, 429):
                raise TransientError(f"{LAYER}: {what}: {exc}") from exc
            raise

    @staticmethod
    def _refused(what: str, exc: SchemaRegistryError) -> LayerRequestError:
        return LayerRequestError(
            LAYER, f"{what}: {exc}", status=exc.http_status_code, code=str(exc.error_code)
        )

    # -- RegistryLayer ---------------------------------------------------------------------------------------

    def latest(self, subject: str) -> RegistryVersion | None:
        self.client.clear_latest_caches()
        try:
            reg = self._call(f"latest version of {subject}", lambda: self.client.get_latest_version(subject))
        except SchemaRegistryError as exc:
            if exc.error_code == SUBJECT_NOT_FOUND:
                return None
            raise self._refused(f"latest version of {subject}", exc) from exc
        assert reg.version is not None and reg.schema_id is not None
        refs = tuple((str(r.name), str(r.subject), int(r.version or 0)) for r in reg.schema.references or ())
        return RegistryVersion(subject, int(reg.version), int(reg.schema_id), str(reg.schema.schema_str),
                               str(reg.schema.schema_type or "AVRO").upper(), refs)

    def versions(self, subject: str) -> list[int]:
        try:
            found = self._call(f"versions of {subject}", lambda: self.client.get_versions(subject))
        except SchemaRegistryError as exc:
            if exc.error_code == SUBJECT_NOT_FOUND:
                return []
            raise self._refused(f"versions of {subject}", exc) from exc
        return sorted(int(v) for v in found)

    def compatibility_level(self, subject: str) -> str:
        """The subject's own level, else its context's (`:.ctx:` for a subject `:.ctx:name`), else the global."""
        scopes = [subject] + [c for c in (_context_of(subject),) if c is not None]
        for scope in scopes:
            try:
                return str(self._call(f"level of {scope}", partial(self.client.get_compatibility, scope)))
            except SchemaRegistryError as exc:
                if exc.error_code not in (SUBJECT_LEVEL_NOT_CONFIGURED, SUBJECT_NOT_FOUND):
                    raise self._refused(f"level of {scope}", exc) from exc
        try:
            return str(self._call("global level", lambda: self.client.get_compatibility(None)))
        except SchemaRegistryError as exc:
            raise self._refused("global level", exc) from exc

    def check_compatibility(self, subject: str, schema: str) -> CompatibilityResult:
        """Test against what the level requires (all live versions for *_TRANSITIVE); a new subject passes."""
        level = self.compatibility_level(subject)
        path = f"/compatibility/subjects/{quote(subject, safe='')}/versions"
        try:
            resp = self._http.post(
                self.url + path,
                params={"verbose": "true"},
                json={"schema": schema},
                headers={"Content-Type": MEDIA_TYPE, "Accept": MEDIA_TYPE},
            )
        except httpx.TransportError as exc:
            raise LayerUnreachableError(
                LAYER, f"compatibility of {subject}: {type(exc).__name__}: {exc}"
            ) from exc
        body = _json(resp)
        if resp.status_code == 404 and body.get("error_code") == SUBJECT_NOT_FOUND:
            return CompatibilityResult(True, level)
        if resp.status_code >= 500:
            raise TransientError(f"{LAYER}: compatibility of {subject}: HTTP {resp.status_code}: {body}")
        if resp.status_code != 200:
            raise LayerRequestError(
                LAYER,
                f"compatibility of {subject}: HTTP {resp.status_code}: {body.get('message', body)}",
                status=resp.status_code,
                code=str(body.get("error_code", "")),
            )
        raw = body.get("messages")
        messages = tuple(str(m) for m in raw) if isinstance(raw, list) else ()
        return CompatibilityResult(bool(body.get("is_compatible")), level, messages)

    def register(self, subject: str, schema: str) -> RegistryVersion:
        """Register and return the version holding the schema (the register answer carries only the id).

        Incompatible → IncompatibleSchemaError with the registry's verbose messages (not retryable).
        """
        parsed = Schema(schema, "AVRO")
        self.client.clear_caches()  # a cached id would skip the call after an out-of-process soft delete
        try:
            schema_id = self._call(
                f"register {subject}", lambda: self.client.register_schema(subject, parsed)
            )
            found = self._call(f"lookup {subject}", lambda: self.client.lookup_schema(subject, parsed))
        except SchemaRegistryError as exc:
            if exc.http_status_code == 409:
                check = self.check_compatibility(subject, schema)
                raise IncompatibleSchemaError(subject, check.level, check.messages or (str(exc),)) from exc
            raise self._refused(f"register {subject}", exc) from exc
        assert found.version is not None
        return RegistryVersion(
            subject, int(found.version), int(schema_id), str(found.schema.schema_str or schema)
        )

    def soft_delete(self, subject: str, version: int) -> None:
        """Soft-delete one version; one already soft-deleted counts as done (compensations get re-run)."""
        try:
            self._call(f"delete {subject} v{version}", lambda: self.client.delete_version(subject, version))
        except SchemaRegistryError as exc:
            if exc.error_code == VERSION_SOFT_DELETED:
                return
            if exc.error_code in (SUBJECT_NOT_FOUND, VERSION_NOT_FOUND):
                raise LayerObjectNotFoundError(LAYER, "subject version", f"{subject} v{version}") from exc
            raise self._refused(f"delete {subject} v{version}", exc) from exc


def _context_of(subject: str) -> str | None:
    """`:.ctx:` for a subject qualified with a schema context other than the default one, else None."""
    end = subject.find(":", 2) if subject.startswith(":.") else -1
    return subject[: end + 1] if end > 2 else None


def _json(resp: httpx.Response) -> dict[str, object]:
    try:
        body = resp.json()
    except ValueError:
        return {"message": resp.text[:300]}
    return body if isinstance(body, dict) else {"message": body}
