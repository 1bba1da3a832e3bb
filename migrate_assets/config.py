"""`migrate.yaml`: the project file (SPEC §2).

Found by `--config`, then `$MIGRATE_ASSETS_CONFIG`, then `./migrate.yaml`. `${VAR}` and `${VAR:-default}` are
expanded from the environment before validation. Unknown keys, wrong types and missing required keys are
reported together, each with file, line and key path. Secrets (the DSN's password, URL userinfo) are never
printed: `migrate_assets.redact` hides them wherever a DSN or URL is shown, and the secrets of a loaded config
are remembered so that no message can carry them. A DSN libpq cannot parse is refused here, without echoing
libpq's message (which quotes the DSN).
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from migrate_assets.errors import ConfigError, Problem
from migrate_assets.redact import dsn_secrets, redact_dsn, redact_url, remember
from migrate_assets.schema.yamlsrc import KeyPath, YamlDoc, load_yaml

__all__ = ["ProjectConfig", "load_config", "parse_duration", "redact_dsn"]

ENV_VAR = "MIGRATE_ASSETS_CONFIG"
DEFAULT_FILE = "migrate.yaml"

_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: Any) -> float:
    """`2s`, `500ms`, `1.5m`, `0`, or a bare number of seconds → seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 2s or 500ms")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"a duration must be a finite number of seconds, not negative, got {value!r}")
        return float(value)
    if isinstance(value, str):
        m = _DURATION_RE.match(value)
        if m:
            return float(m.group(1)) * _UNITS[m.group(2)]
    raise ValueError(f"expected a duration such as 2s or 500ms, got {value!r}")


def dsn_problem(dsn: str) -> str | None:
    """Why libpq cannot parse `dsn` (without any quoted part of it), or None when it can."""
    from psycopg import conninfo

    try:
        conninfo.conninfo_to_dict(dsn)
    except Exception as exc:  # psycopg.ProgrammingError
        reason = _QUOTED.sub("…", str(exc).strip().splitlines()[0] if str(exc).strip() else "")
        return f"cannot be parsed as a libpq URL or key=value conninfo ({reason})"
    return None


_QUOTED = re.compile(r"\"[^\"]*\"?|'[^']*'?")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseConfig(_Strict):
    dsn: str
    schema_: str = Field(default="public", alias="schema")

    @field_validator("dsn")
    @classmethod
    def _nonempty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty (is the environment variable set?)")
        remember(*dsn_secrets(v))
        problem = dsn_problem(v)
        if problem:
            raise ValueError(problem)
        return v

    def __repr__(self) -> str:  # never show the password
        return f"DatabaseConfig(dsn={redact_dsn(self.dsn)!r}, schema={self.schema_!r})"

    __str__ = __repr__


class RetryConfig(_Strict):
    attempts: int = Field(default=5, ge=1, le=100)
    backoff: float = 0.5
    max_backoff: float = 30.0

    @field_validator("backoff", "max_backoff", mode="before")
    @classmethod
    def _dur(cls, v: Any) -> float:
        return parse_duration(v)


def _remember_url(url: str) -> str:
    remember(*dsn_secrets(url))
    return url


class KafkaConnectConfig(_Strict):
    url: str

    _secrets = field_validator("url")(_remember_url)

    def __repr__(self) -> str:
        return f"KafkaConnectConfig(url={redact_url(self.url)!r})"

    __str__ = __repr__


class KafkaConfig(_Strict):
    bootstrap_servers: str


class SchemaRegistryConfig(_Strict):
    url: str

    _secrets = field_validator("url")(_remember_url)

    def __repr__(self) -> str:
        return f"SchemaRegistryConfig(url={redact_url(self.url)!r})"

    __str__ = __repr__


class IcebergConfig(_Strict):
    name: str = "lake"
    properties: dict[str, str] = Field(default_factory=dict)


class PipelineConfig(_Strict):
    table: str
    connector: str | None = None
    subject: str | None = None
    iceberg_table: str | None = None
    sink: str | None = None  # the Kafka Connect sink connector writing iceberg_table
    unwrapped: bool = False


class ProjectConfig(_Strict):
    """The validated contents of migrate.yaml. Relative paths are resolved against the file's folder."""

    database: DatabaseConfig
    schemas: list[str] = Field(default_factory=lambda: ["schemas/"])
    migrations: str = "migrations/"
    lock_table: str = "schema_migrations"
    lock_wait: float = 30.0
    on_breaking_change: Literal["block", "warn", "expand_contract"] = "block"
    lock_timeout: float = 2.0
    statement_timeout: float = 0.0
    retries: RetryConfig = Field(default_factory=RetryConfig)
    kafka_connect: KafkaConnectConfig | None = None
    kafka: KafkaConfig | None = None
    schema_registry: SchemaRegistryConfig | None = None
    iceberg: IcebergConfig | None = None
    pipelines: list[PipelineConfig] = Field(default_factory=list)
    base_dir: str = "."
    source_file: str = "<defaults>"

    @field_validator("schemas", mode="before")
    @classmethod
    def _list(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("on_breaking_change", mode="before")
    @classmethod
    def _alias(cls, v: Any) -> Any:
        return "expand_contract" if v == "blue_green" else v

    @field_validator("lock_timeout", "statement_timeout", "lock_wait", mode="before")
    @classmethod
    def _dur(cls, v: Any) -> float:
        return parse_duration(v)

    def path(self, rel: str) -> Path:
        p = Path(rel)
        return p if p.is_absolute() else Path(self.base_dir) / p

    def pipeline_for(self, table: str) -> PipelineConfig | None:
        qualified = table if "." in table else f"{self.database.schema_}.{table}"
        for p in self.pipelines:
            pq = p.table if "." in p.table else f"{self.database.schema_}.{p.table}"
            if pq == qualified:
                return p
        return None


def expand_env(value: Any, path: KeyPath, doc: YamlDoc, problems: list[Problem]) -> Any:
    """Expand `${VAR}` / `${VAR:-default}` in every string of the document."""
    if isinstance(value, dict):
        return {k: expand_env(v, (*path, k), doc, problems) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, (*path, i), doc, problems) for i, v in enumerate(value)]
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in os.environ:
                return os.environ[name]
            if default is not None:
                return default
            problems.append(doc.problem(path, f"environment variable {name} is not set"))
            return ""

        return _ENV_RE.sub(sub, value)
    return value


def find_config_file(explicit: str | None = None) -> Path:
    if explicit:
        return Path(explicit)
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    return Path(DEFAULT_FILE)


def load_config(explicit: str | None = None) -> ProjectConfig:
    path = find_config_file(explicit)
    doc = load_yaml(path)
    problems: list[Problem] = list(doc.duplicates)
    if not isinstance(doc.data, dict):
        raise ConfigError([doc.problem((), "expected a mapping of settings at the top level")])
    data = expand_env(doc.data, (), doc, problems)
    if problems:
        raise ConfigError(problems)
    for reserved in ("base_dir", "source_file"):
        if reserved in data:
            raise ConfigError([doc.problem((reserved,), "unknown key")])
    data["base_dir"] = str(path.resolve().parent)
    data["source_file"] = str(path)
    try:
        return ProjectConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(validation_problems(exc, doc)) from None


def validation_problems(exc: ValidationError, doc: YamlDoc) -> list[Problem]:
    """Turn pydantic's errors into file/line/key problems (shared by every YAML format)."""
    out: list[Problem] = []
    for err in exc.errors():
        loc: KeyPath = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        kind = err["type"]
        if kind == "extra_forbidden":
            msg = "unknown key"
        elif kind == "missing":
            msg = "required key is missing"
        else:
            msg = err["msg"]
            if "input" in err and kind != "value_error" and not isinstance(err["input"], dict | list):
                msg += f" (got {err['input']!r})"
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        out.append(doc.problem(loc, msg))
    return out
