"""Discovery of versioned migration files (pure: reads a directory, touches no database).

`<version>_<description>.up.sql` with an optional `.down.sql` of the same version. Every problem in the directory
is collected and raised at once, so a broken directory is fixed in one pass and nothing runs until it is clean:
the original silently ignored near-miss names and let `1_b` overwrite `001_a`.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from migrate_assets.errors import MigrationFileError, Problem
from migrate_assets.versioned import sqltext

MAX_VERSION = 2**63 - 1
_NAME = re.compile(r"^(?P<version>\d+)_(?P<description>[^.]+)\.(?P<direction>up|down)\.sql$")
# names that are probably meant as migrations: they end in .sql (any case), start with a number, or carry a
# direction; anything else (README.md, .gitkeep, notes.txt) is left alone
_LOOKS_LIKE = re.compile(r"(\.sql$)|(^\d+[-_ .])|(\.(up|down)\.)", re.IGNORECASE)
_DIRECTIVE = re.compile(r"^--\s*migrate:\s*(?P<value>.*?)\s*$", re.IGNORECASE)
NO_TRANSACTION = "no-transaction"
#: the words a transaction-control statement starts with (`sqltext.transaction_control`)
_TX_WORD = re.compile(r"\b(?:begin|start|commit|end|abort|rollback|prepare)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Migration:
    """One version: its up script, its optional down script, and their checksums."""

    version: int
    description: str
    up_path: Path
    up_sql: str
    checksum: str
    down_path: Path | None = None
    down_sql: str | None = None
    down_checksum: str | None = None
    no_transaction: bool = False
    down_no_transaction: bool = False

    @property
    def name(self) -> str:
        return self.up_path.name


def normalise(data: bytes) -> bytes:
    """Line endings to LF and no BOM, so a checkout on Windows does not change a checksum."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


def checksum(data: bytes) -> str:
    """Lowercase hex SHA-256 of the normalised file contents."""
    return hashlib.sha256(normalise(data)).hexdigest()


def _directive(sql: str) -> str | None:
    first = sql.split("\n", 1)[0]
    m = _DIRECTIVE.match(first)
    return m.group("value").lower() if m else None


@dataclass
class _Half:
    path: Path
    description: str
    sql: str
    checksum: str
    no_transaction: bool


def _read(path: Path, problems: list[Problem]) -> tuple[str, str] | None:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        problems.append(Problem(str(path), f"cannot read: {exc.strerror or exc}"))
        return None
    data = normalise(raw)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        problems.append(Problem(str(path), f"not valid UTF-8 (byte {exc.start})"))
        return None
    return text, hashlib.sha256(data).hexdigest()  # = checksum(raw), without normalising twice


def _plain(sql: str) -> bool:
    """A script that passes the checks below without being split into statements (most migrations; the split
    was most of the time of loading 1,000 small files): no comment, so something besides whitespace and `;`
    is a statement, and no word a transaction-control statement could start with."""
    return "--" not in sql and "/*" not in sql and sql.strip(" \t\n\r\f\v;") != "" and not _TX_WORD.search(sql)


def _check_body(path: Path, sql: str, direction: str, problems: list[Problem]) -> bool | None:
    """Validate one script; returns its no-transaction flag, or None when it has a problem."""
    directive = _directive(sql)
    if directive is not None and directive != NO_TRANSACTION:
        problems.append(
            Problem(
                str(path), f"unknown directive '-- migrate: {directive}' (only '{NO_TRANSACTION}')", line=1
            )
        )
        return None
    if _plain(sql):
        return False
    statements = sqltext.split_statements(sql)
    if not statements:
        problems.append(Problem(str(path), f"empty {direction} script (only whitespace or comments)"))
        return None
    no_tx = directive == NO_TRANSACTION
    if not no_tx:
        for stmt in sqltext.transaction_control(statements):
            line = sql.count("\n", 0, stmt.start) + 1
            keyword = stmt.code.split()[0].rstrip(";").upper()
            problems.append(
                Problem(
                    str(path),
                    f"transaction control statement {keyword!r}: each migration already runs in its own "
                    f"transaction; remove it, or start the file with '-- migrate: {NO_TRANSACTION}'",
                    line=line,
                )
            )
            return None
    return no_tx


def load_migrations(directory: str | Path) -> tuple[Migration, ...]:
    """All migrations in `directory`, ascending by version; MigrationFileError lists every problem found."""
    root = Path(directory)
    if not root.is_dir():
        raise MigrationFileError([Problem(str(root), "migrations directory does not exist")])
    problems: list[Problem] = []
    ups: dict[int, _Half] = {}
    downs: dict[int, _Half] = {}
    with os.scandir(root) as entries:
        listing = sorted((e.name, e.is_dir()) for e in entries)
    for name, is_dir in listing:
        path = root / name
        if name.startswith(".") or is_dir:
            continue
        m = _NAME.match(name)
        if not m:
            if _LOOKS_LIKE.search(name):
                problems.append(
                    Problem(
                        str(path),
                        "looks like a migration but does not match <version>_<description>.up.sql or "
                        ".down.sql (digits, an underscore, a description without dots, lower-case .up.sql)",
                    )
                )
            continue
        version = int(m.group("version"))
        if version > MAX_VERSION:
            problems.append(Problem(str(path), f"version {m.group('version')} is larger than a bigint"))
            continue
        if version == 0:  # 0 means "nothing applied" (`down --to 0`)
            problems.append(Problem(str(path), "version 0 is reserved; versions start at 1"))
            continue
        direction = m.group("direction")
        table = ups if direction == "up" else downs
        if version in table:
            problems.append(
                Problem(
                    str(path), f"duplicate version {version}: {table[version].path.name} has the same version"
                )
            )
            continue
        read = _read(path, problems)
        if read is None:
            continue
        sql, digest = read
        no_tx = _check_body(path, sql, direction, problems)
        if no_tx is None:
            # still reserve the version so a duplicate is reported, but do not build a migration from it
            table[version] = _Half(path, m.group("description"), "", "", False)
            continue
        table[version] = _Half(path, m.group("description"), sql, digest, no_tx)

    for version, down in downs.items():
        up = ups.get(version)
        if up is None:
            problems.append(
                Problem(str(down.path), f"down script without an up script for version {version}")
            )
        elif up.description != down.description:
            problems.append(
                Problem(
                    str(down.path),
                    f"description {down.description!r} differs from the up script's {up.description!r}",
                )
            )
    if problems:
        raise MigrationFileError(problems)

    out = []
    for version in sorted(ups):
        up = ups[version]
        half = downs.get(version)
        out.append(
            Migration(
                version=version,
                description=up.description,
                up_path=up.path,
                up_sql=up.sql,
                checksum=up.checksum,
                down_path=half.path if half else None,
                down_sql=half.sql if half else None,
                down_checksum=half.checksum if half else None,
                no_transaction=up.no_transaction,
                down_no_transaction=half.no_transaction if half else False,
            )
        )
    return tuple(out)
