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
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from migrate_assets.errors import ConfigError, Problem
from migrate_assets.redact import dsn_secrets, redact_dsn, redact_url, remember
from migrate_assets.schema.yamlsrc import KeyPath, YamlDoc, format_path, load_yaml

__all__ = ["BREAKING_CHANGE_POLICIES", "ProjectConfig", "load_config", "parse_duration", "redact_dsn"]

ENV_VAR = "MIGRATE_ASSETS_CONFIG"
DEFAULT_FILE = "migrate.yaml"
#: what `on_breaking_change` may say (`blue_green` is read as `expand_contract`)
BREAKING_CHANGE_POLICIES: tuple[str, ...] = ("block", "warn", "expand_contract")

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

# -- reading a mapping into a model ---------------------------------------------------------------------------
# Each model's settings say how their YAML value is checked (`check`: value -> value, raising ValueError with
# what was expected) and, when it differs from the attribute, their key in the file (`key`). pydantic
# did this before and cost ~0.1 s of every command's start-up (its import and the models' schemas), more than the
# rest of reading the file.

Check = Callable[[Any], Any]


def _got(value: Any) -> str:
    return f" (got {value!r})" if not isinstance(value, dict | list) else ""


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string{_got(value)}")
    return value


def _optional(check: Check) -> Check:
    def run(value: Any) -> Any:
        return None if value is None else check(value)

    return run


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false{_got(value)}")
    return value


def _integer(lo: int, hi: int) -> Check:
    def run(value: Any) -> int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected a whole number{_got(value)}")
        if not lo <= value <= hi:
            raise ValueError(f"expected a number from {lo} to {hi}{_got(value)}")
        return value

    return run


def _duration(value: Any) -> float:
    return parse_duration(value)


def _nonempty_dsn(value: Any) -> str:
    dsn = _string(value)
    if not dsn.strip():
        raise ValueError("must not be empty (is the environment variable set?)")
    remember(*dsn_secrets(dsn))
    problem = dsn_problem(dsn)
    if problem:
        raise ValueError(problem)
    return dsn


def _url(value: Any) -> str:
    url = _string(value)
    remember(*dsn_secrets(url))
    return url


def _string_map(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ValueError(f"expected a mapping of strings{_got(value)}")
    for k, v in value.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise ValueError(f"expected a mapping of strings (key {k!r}: got {v!r}; quote it)")
    return dict(value)


def _string_list(value: Any) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
        raise ValueError(f"expected a path or a list of paths{_got(value)}")
    return list(items)


def _policy(value: Any) -> str:
    value = "expand_contract" if value == "blue_green" else value
    if value not in BREAKING_CHANGE_POLICIES:
        raise ValueError(f"expected one of {', '.join(BREAKING_CHANGE_POLICIES)}{_got(value)}")
    return str(value)


_MISSING: Any = object()


class _Field:
    """One setting of a model: its attribute, its key in the file, how its value is checked, its default."""

    __slots__ = ("check", "default", "factory", "key", "name", "nested")

    def __init__(self, check: Any, key: str | None, default: Any, factory: Callable[[], Any] | None,
                 nested: bool = False) -> None:
        self.check, self.default, self.factory, self.nested = check, default, factory, nested
        self.key, self.name = key or "", ""


def _opt(check: Check, key: str | None = None, default: Any = _MISSING,
         default_factory: Callable[[], Any] | None = None) -> Any:
    """A setting read from the YAML through `check` (under `key`, when it is not the attribute's name)."""
    return _Field(check, key, default, default_factory)


class _ProblemsSeen(ValueError):
    """Raised by `_read` below a model: the problems are already recorded."""


M = TypeVar("M", bound="_Model")


class _Model:
    """What the models share: frozen instances compared by value, reading a mapping (every problem reported,
    with its key path), and the two calls of the pydantic API that callers use (`model_validate`,
    `model_copy`). Plain classes, not dataclasses: a dataclass compiles its methods when the module loads
    (~1 ms each on a quiet machine), and every command loads this module."""

    _fields: ClassVar[tuple[_Field, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        fields = []
        for name, value in list(vars(cls).items()):
            if isinstance(value, _Field):
                value.name, value.key = name, value.key or name
                fields.append(value)
                delattr(cls, name)
        cls._fields = tuple(fields)

    def __init__(self, **values: Any) -> None:
        for f in self._fields:
            if f.name in values:
                value = values.pop(f.name)
            elif f.factory is not None:
                value = f.factory()
            elif f.default is not _MISSING:
                value = f.default
            else:
                raise TypeError(f"{type(self).__name__}() needs {f.name}")
            object.__setattr__(self, f.name, value)
        if values:
            raise TypeError(f"{type(self).__name__}() takes no {', '.join(sorted(values))}")
        self._created()

    def _created(self) -> None:
        """Called once the values are set (the URL models remember their secrets)."""

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen: use model_copy(update=...)")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen")

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, f.name) for f in self._fields)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self._values() == other._values()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), self._values()))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{f.name}={getattr(self, f.name)!r}' for f in self._fields)})"

    @classmethod
    def _read(cls: type[M], data: Any, path: KeyPath, problems: list[tuple[KeyPath, str]]) -> M:
        if not isinstance(data, dict):
            problems.append((path, f"expected a mapping{_got(data)}"))
            raise _ProblemsSeen
        fields = {f.key: f for f in cls._fields}
        values: dict[str, Any] = {}
        bad = False
        for key in data:
            if key not in fields:
                problems.append(((*path, key), "unknown key"))
                bad = True
        for key, f in fields.items():
            if key not in data:
                if f.default is _MISSING and f.factory is None:
                    problems.append(((*path, key), "required key is missing"))
                    bad = True
                continue
            try:
                values[f.name] = f.check(data[key], (*path, key), problems) if f.nested else f.check(data[key])
            except _ProblemsSeen:
                bad = True
            except ValueError as exc:
                problems.append(((*path, key), str(exc)))
                bad = True
        if bad:
            raise _ProblemsSeen
        return cls(**values)

    @classmethod
    def model_validate(cls: type[M], data: Any) -> M:
        """The model of `data` (a mapping as read from YAML); ValueError listing every problem otherwise."""
        problems: list[tuple[KeyPath, str]] = []
        try:
            return cls._read(data, (), problems)
        except _ProblemsSeen:
            raise ValueError("; ".join(f"{format_path(p) or '<top>'}: {m}" for p, m in problems)) from None

    def model_copy(self: M, *, update: dict[str, Any] | None = None) -> M:
        """A copy with some attributes replaced (not checked, as in pydantic)."""
        return type(self)(**{**{f.name: getattr(self, f.name) for f in self._fields}, **(update or {})})


def _nested(model: type[_Model], optional: bool = False, many: bool = False, default: Any = _MISSING,
            default_factory: Callable[[], Any] | None = None) -> Any:
    def check(value: Any, path: KeyPath, problems: list[tuple[KeyPath, str]]) -> Any:
        if value is None and optional:
            return None
        if not many:
            return model._read(value, path, problems)
        if not isinstance(value, list):
            problems.append((path, f"expected a list{_got(value)}"))
            raise _ProblemsSeen
        out, bad = [], False
        for i, item in enumerate(value):
            try:
                out.append(model._read(item, (*path, i), problems))
            except _ProblemsSeen:
                bad = True
        if bad:
            raise _ProblemsSeen
        return out

    return _Field(check, None, default, default_factory, nested=True)


class DatabaseConfig(_Model):
    dsn: str = _opt(_nonempty_dsn)
    schema_: str = _opt(_string, key="schema", default="public")

    def _created(self) -> None:
        remember(*dsn_secrets(self.dsn))

    def __repr__(self) -> str:  # never show the password
        return f"DatabaseConfig(dsn={redact_dsn(self.dsn)!r}, schema={self.schema_!r})"

    __str__ = __repr__


class RetryConfig(_Model):
    attempts: int = _opt(_integer(1, 100), default=5)
    backoff: float = _opt(_duration, default=0.5)
    max_backoff: float = _opt(_duration, default=30.0)


class KafkaConnectConfig(_Model):
    url: str = _opt(_url)

    def _created(self) -> None:
        remember(*dsn_secrets(self.url))

    def __repr__(self) -> str:
        return f"KafkaConnectConfig(url={redact_url(self.url)!r})"

    __str__ = __repr__


class KafkaConfig(_Model):
    bootstrap_servers: str = _opt(_string)


class SchemaRegistryConfig(_Model):
    url: str = _opt(_url)

    def _created(self) -> None:
        remember(*dsn_secrets(self.url))

    def __repr__(self) -> str:
        return f"SchemaRegistryConfig(url={redact_url(self.url)!r})"

    __str__ = __repr__


class IcebergConfig(_Model):
    name: str = _opt(_string, default="lake")
    properties: dict[str, str] = _opt(_string_map, default_factory=dict)


_ostr = _optional(_string)


class PipelineConfig(_Model):
    table: str = _opt(_string)
    connector: str | None = _opt(_ostr, default=None)
    subject: str | None = _opt(_ostr, default=None)
    iceberg_table: str | None = _opt(_ostr, default=None)
    sink: str | None = _opt(_ostr, default=None)  # the Kafka Connect sink connector writing iceberg_table
    unwrapped: bool = _opt(_boolean, default=False)


class ProjectConfig(_Model):
    """The validated contents of migrate.yaml. Relative paths are resolved against the file's folder."""

    database: DatabaseConfig = _nested(DatabaseConfig)
    schemas: list[str] = _opt(_string_list, default_factory=lambda: ["schemas/"])
    migrations: str = _opt(_string, default="migrations/")
    lock_table: str = _opt(_string, default="schema_migrations")
    lock_wait: float = _opt(_duration, default=30.0)
    on_breaking_change: str = _opt(_policy, default="block")  # one of BREAKING_CHANGE_POLICIES
    lock_timeout: float = _opt(_duration, default=2.0)
    statement_timeout: float = _opt(_duration, default=0.0)
    retries: RetryConfig = _nested(RetryConfig, default_factory=RetryConfig)
    kafka_connect: KafkaConnectConfig | None = _nested(KafkaConnectConfig, optional=True, default=None)
    kafka: KafkaConfig | None = _nested(KafkaConfig, optional=True, default=None)
    schema_registry: SchemaRegistryConfig | None = _nested(SchemaRegistryConfig, optional=True, default=None)
    iceberg: IcebergConfig | None = _nested(IcebergConfig, optional=True, default=None)
    pipelines: list[PipelineConfig] = _nested(PipelineConfig, many=True, default_factory=list)
    base_dir: str = _opt(_string, default=".")
    source_file: str = _opt(_string, default="<defaults>")

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
    problems_at: list[tuple[KeyPath, str]] = []
    try:
        return ProjectConfig._read(data, (), problems_at)
    except _ProblemsSeen:
        raise ConfigError([doc.problem(key, msg) for key, msg in problems_at]) from None
