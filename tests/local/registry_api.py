"""One registry API, two drivers: raw HTTP (httpx) and confluent-kafka's `SchemaRegistryClient`.

The ported Confluent REST cases run once through each driver, so a difference between what the server
answers and what the client understands shows up as a failure. Calls the client does not have (explicit
ids in IMPORT mode, `fetchMaxId`, raw schemas, verbose messages) go through `raw` in both runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from confluent_kafka.schema_registry import Schema, SchemaReference, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

MEDIA = "application/vnd.schemaregistry.v1+json"


class ApiError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(f"HTTP {status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class Ref:
    name: str
    subject: str
    version: int

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "subject": self.subject, "version": self.version}


def _s(subject: str) -> str:
    return quote(subject, safe="")


class Http:
    name = "http"

    def __init__(self, url: str) -> None:
        self.url = url
        self.raw = self
        self._h = httpx.Client(base_url=url, headers={"Content-Type": MEDIA, "Accept": MEDIA}, timeout=30)

    def close(self) -> None:
        self._h.close()

    def call(self, method: str, path: str, params: dict[str, Any] | None = None, body: object = None) -> Any:
        answer = self._h.request(method, path, params=params, content=None if body is None else json.dumps(body))
        data = answer.json() if answer.content else None
        if answer.status_code != 200:
            assert isinstance(data, dict), answer.text
            raise ApiError(answer.status_code, data["error_code"], data["message"])
        return data

    @staticmethod
    def _body(schema: str, schema_type: str | None, refs: list[Ref] | None, **extra: object) -> dict[str, object]:
        body: dict[str, object] = {"schema": schema, **{k: v for k, v in extra.items() if v is not None}}
        if schema_type:
            body["schemaType"] = schema_type
        if refs is not None:
            body["references"] = [r.to_json() for r in refs]
        return body

    def register(self, subject: str, schema: str, schema_type: str | None = None, refs: list[Ref] | None = None,
                 normalize: bool = False, id: int | None = None, version: int | None = None) -> int:
        body = self._body(schema, schema_type, refs, id=id, version=version)
        params = {"normalize": "true"} if normalize else None
        return int(self.call("POST", f"/subjects/{_s(subject)}/versions", params, body)["id"])

    def lookup(self, subject: str, schema: str, refs: list[Ref] | None = None, deleted: bool = False,
               normalize: bool = False, schema_type: str | None = None) -> dict[str, Any]:
        params = {"deleted": str(deleted).lower(), "normalize": str(normalize).lower()}
        found: dict[str, Any] = self.call(
            "POST", f"/subjects/{_s(subject)}", params, self._body(schema, schema_type, refs))
        return found

    def version(self, subject: str, version: int | str, deleted: bool = False) -> dict[str, Any]:
        found: dict[str, Any] = self.call(
            "GET", f"/subjects/{_s(subject)}/versions/{version}", {"deleted": str(deleted).lower()})
        return found

    def versions(self, subject: str, deleted: bool = False, deleted_only: bool = False) -> list[int]:
        params = {"deleted": str(deleted).lower(), "deletedOnly": str(deleted_only).lower()}
        return list(self.call("GET", f"/subjects/{_s(subject)}/versions", params))

    def subjects(self, prefix: str | None = None, deleted: bool = False, deleted_only: bool = False,
                 offset: int = 0, limit: int = -1) -> list[str]:
        params: dict[str, Any] = {"deleted": str(deleted).lower(), "deletedOnly": str(deleted_only).lower(),
                                  "offset": offset, "limit": limit}
        if prefix is not None:
            params["subjectPrefix"] = prefix
        return list(self.call("GET", "/subjects", params))

    def delete_version(self, subject: str, version: int | str, permanent: bool = False) -> int:
        params = {"permanent": "true"} if permanent else None
        return int(self.call("DELETE", f"/subjects/{_s(subject)}/versions/{version}", params))

    def delete_subject(self, subject: str, permanent: bool = False) -> list[int]:
        params = {"permanent": "true"} if permanent else None
        return list(self.call("DELETE", f"/subjects/{_s(subject)}", params))

    def schema(self, schema_id: int, subject: str | None = None) -> dict[str, Any]:
        params = None if subject is None else {"subject": subject}
        found: dict[str, Any] = self.call("GET", f"/schemas/ids/{schema_id}", params)
        return found

    def id_subjects(self, schema_id: int, deleted: bool = False) -> list[str]:
        return list(self.call("GET", f"/schemas/ids/{schema_id}/subjects", {"deleted": str(deleted).lower()}))

    def id_versions(self, schema_id: int, deleted: bool = False) -> list[tuple[str, int]]:
        found = self.call("GET", f"/schemas/ids/{schema_id}/versions", {"deleted": str(deleted).lower()})
        return [(f["subject"], f["version"]) for f in found]

    def compatible(self, subject: str, schema: str, version: int | str | None = "latest",
                   schema_type: str | None = None) -> bool:
        path = f"/compatibility/subjects/{_s(subject)}/versions" + ("" if version is None else f"/{version}")
        return bool(self.call("POST", path, None, self._body(schema, schema_type, None))["is_compatible"])

    def level(self, subject: str | None = None) -> str:
        return str(self.call("GET", "/config" + ("" if subject is None else f"/{_s(subject)}"))["compatibilityLevel"])

    def set_level(self, level: str, subject: str | None = None) -> None:
        self.call("PUT", "/config" + ("" if subject is None else f"/{_s(subject)}"), None, {"compatibility": level})

    def delete_level(self, subject: str | None = None) -> str:
        path = "/config" + ("" if subject is None else f"/{_s(subject)}")
        return str(self.call("DELETE", path)["compatibilityLevel"])

    def mode(self, subject: str | None = None) -> str:
        return str(self.call("GET", "/mode" + ("" if subject is None else f"/{_s(subject)}"))["mode"])

    def set_mode(self, mode: str, subject: str | None = None, force: bool = False) -> str:
        path = "/mode" + ("" if subject is None else f"/{_s(subject)}")
        return str(self.call("PUT", path, {"force": str(force).lower()}, {"mode": mode})["mode"])

    def delete_mode(self, subject: str) -> str:
        return str(self.call("DELETE", f"/mode/{_s(subject)}")["mode"])

    def referenced_by(self, subject: str, version: int | str) -> list[int]:
        return list(self.call("GET", f"/subjects/{_s(subject)}/versions/{version}/referencedby"))

    def contexts(self) -> list[str]:
        return list(self.call("GET", "/contexts"))

    def schemas(self, prefix: str | None = None) -> list[dict[str, Any]]:
        return list(self.call("GET", "/schemas", None if prefix is None else {"subjectPrefix": prefix}))

    def types(self) -> list[str]:
        return list(self.call("GET", "/schemas/types"))


class Client:
    """The same calls through confluent-kafka's client; its caches are cleared before each call, since the
    ported cases read back what they just deleted."""

    name = "client"

    def __init__(self, url: str) -> None:
        self.raw = Http(url)
        self._c = SchemaRegistryClient({"url": url, "max.retries": 0})

    def close(self) -> None:
        self.raw.close()

    def _run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        self._c.clear_caches()
        self._c.clear_latest_caches()
        try:
            return fn(*args, **kwargs)
        except SchemaRegistryError as exc:
            raise ApiError(exc.http_status_code, exc.error_code, exc.error_message) from exc

    @staticmethod
    def _schema(schema: str, schema_type: str | None, refs: list[Ref] | None) -> Schema:
        references = [SchemaReference(r.name, r.subject, r.version) for r in refs or []]
        return Schema(schema, schema_type or "AVRO", references)

    @staticmethod
    def _registered(reg: Any) -> dict[str, Any]:
        body = {"subject": reg.subject, "version": reg.version, "id": reg.schema_id, "schema": reg.schema.schema_str}
        refs = [Ref(r.name, r.subject, r.version).to_json() for r in reg.schema.references or []]
        return {**body, **({"references": refs} if refs else {})}

    def register(self, subject: str, schema: str, schema_type: str | None = None, refs: list[Ref] | None = None,
                 normalize: bool = False, id: int | None = None, version: int | None = None) -> int:
        if id is not None or version is not None:  # the client has no call that sends them
            return self.raw.register(subject, schema, schema_type, refs, normalize, id, version)
        return int(self._run(self._c.register_schema, subject, self._schema(schema, schema_type, refs), normalize))

    def lookup(self, subject: str, schema: str, refs: list[Ref] | None = None, deleted: bool = False,
               normalize: bool = False, schema_type: str | None = None) -> dict[str, Any]:
        found = self._run(self._c.lookup_schema, subject, self._schema(schema, schema_type, refs), normalize,
                          deleted=deleted)
        return self._registered(found)

    def version(self, subject: str, version: int | str, deleted: bool = False) -> dict[str, Any]:
        return self._registered(self._run(self._c.get_version, subject, version, deleted))

    def versions(self, subject: str, deleted: bool = False, deleted_only: bool = False) -> list[int]:
        return list(self._run(self._c.get_versions, subject, deleted, deleted_only))

    def subjects(self, prefix: str | None = None, deleted: bool = False, deleted_only: bool = False,
                 offset: int = 0, limit: int = -1) -> list[str]:
        return list(self._run(self._c.get_subjects, prefix, deleted, deleted_only, offset, limit))

    def delete_version(self, subject: str, version: int | str, permanent: bool = False) -> int:
        if version == "latest":
            return self.raw.delete_version(subject, version, permanent)  # the client takes a number only
        return int(self._run(self._c.delete_version, subject, version, permanent))

    def delete_subject(self, subject: str, permanent: bool = False) -> list[int]:
        return list(self._run(self._c.delete_subject, subject, permanent))

    def schema(self, schema_id: int, subject: str | None = None) -> dict[str, Any]:
        found = self._run(self._c.get_schema, schema_id, subject)
        body: dict[str, Any] = {"schema": found.schema_str}
        if found.schema_type and found.schema_type != "AVRO":
            body["schemaType"] = found.schema_type
        if found.references:
            body["references"] = [Ref(r.name, r.subject, r.version).to_json() for r in found.references]
        return body

    def id_subjects(self, schema_id: int, deleted: bool = False) -> list[str]:
        return list(self._run(self._c.get_subjects_by_schema_id, schema_id, None, deleted))

    def id_versions(self, schema_id: int, deleted: bool = False) -> list[tuple[str, int]]:
        return [(v.subject, v.version) for v in self._run(self._c.get_schema_versions, schema_id, None, deleted)]

    def compatible(self, subject: str, schema: str, version: int | str | None = "latest",
                   schema_type: str | None = None) -> bool:
        parsed = self._schema(schema, schema_type, None)
        if version is None:
            return bool(self._run(self._c.test_compatibility_all_versions, subject, parsed))
        return bool(self._run(self._c.test_compatibility, subject, parsed, version))

    def level(self, subject: str | None = None) -> str:
        return str(self._run(self._c.get_compatibility, subject))

    def set_level(self, level: str, subject: str | None = None) -> None:
        self._run(self._c.set_compatibility, subject, level)

    def delete_level(self, subject: str | None = None) -> str:
        return str(self._run(self._c.delete_config, subject).compatibility_level)

    def mode(self, subject: str | None = None) -> str:
        if subject is None:
            return str(self._run(self._c.get_global_mode))
        return str(self._run(self._c.get_mode, subject))

    def set_mode(self, mode: str, subject: str | None = None, force: bool = False) -> str:
        if subject is None:
            return str(self._run(self._c.update_global_mode, mode, force))
        return str(self._run(self._c.update_mode, subject, mode, force))

    def delete_mode(self, subject: str) -> str:
        return str(self._run(self._c.delete_mode, subject))

    def referenced_by(self, subject: str, version: int | str) -> list[int]:
        return list(self._run(self._c.get_referenced_by, subject, version))

    def contexts(self) -> list[str]:
        return list(self._run(self._c.get_contexts))

    def types(self) -> list[str]:
        return list(self._run(self._c.get_schema_types))


Api = Http | Client
