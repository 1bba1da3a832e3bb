"""Domain operations (`schema.domains` plans them). Lock facts (`pg_locks`, Postgres 15) are in each docstring and
asserted in tests/schema/test_domains.py."""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

from migrate_assets.schema import ddl, hazards
from migrate_assets.schema.ddl import q
from migrate_assets.schema.model import Table
from migrate_assets.schema.ops.base import Ddl, Operation
from migrate_assets.schema.plan import Hazard


def _dom(table: Table) -> sql.Identifier:
    return sql.Identifier(table.schema, table.name)


def _expr(text: str) -> sql.Composable:
    return sql.SQL("({})").format(sql.SQL(text))  # noqa: S608 - checked offline and read by Postgres at plan


def _users(used_by: tuple[str, ...]) -> str:
    if not used_by:
        return "no table uses it yet"
    shown = ", ".join(used_by[:5]) + (f" and {len(used_by) - 5} more" if len(used_by) > 5 else "")
    return f"SHARE lock on the tables of {shown} while every row is checked (writes wait, reads go on)"


@dataclass(frozen=True)
class CreateDomain(Operation):
    """`CREATE DOMAIN … AS … [COLLATE] [DEFAULT] [NOT NULL] [CONSTRAINT … CHECK …]`: no table is locked. The undo
    drops it (nothing used it before)."""

    kind = "create_domain"
    type: str = ""
    default: str | None = None
    not_null: bool = False
    collation: str | None = None
    checks: tuple[tuple[str, str], ...] = ()

    def describe(self, table: Table) -> str:
        extra = [f"default {self.default}"] if self.default is not None else []
        extra += ["not null"] if self.not_null else []
        extra += [f"check {n}" for n, _ in self.checks]
        return f"create domain {table.qualified} as {self.type}" + (f" ({', '.join(extra)})" if extra else "")

    def plain(self, table: Table) -> Ddl:
        from migrate_assets.schema.domains import collation_sql

        parts: list[sql.Composable] = [sql.SQL("CREATE DOMAIN {} AS {}").format(_dom(table), sql.SQL(self.type))]
        if self.collation:
            parts.append(sql.SQL("COLLATE {}").format(collation_sql(self.collation)))
        if self.default is not None:
            parts.append(sql.SQL("DEFAULT {}").format(_expr(self.default)))
        if self.not_null:
            parts.append(sql.SQL("NOT NULL"))
        for n, x in self.checks:
            parts.append(sql.SQL("CONSTRAINT {} CHECK {}").format(sql.Identifier(n), _expr(x)))
        return Ddl((q("{}", sql.SQL(" ").join(parts)),), (q("DROP DOMAIN {}", _dom(table)),), True, (), hazards.NONE)


@dataclass(frozen=True)
class SetDomainDefault(Operation):
    """`ALTER DOMAIN … SET DEFAULT … | DROP DEFAULT`: catalog only, no table lock; rows already stored keep their
    values (the default applies to later inserts)."""

    kind = "set_domain_default"
    default: str | None = None
    previous: str | None = None

    def describe(self, table: Table) -> str:
        to = f"set default {self.default}" if self.default is not None else "drop default"
        return f"domain {table.qualified}: {to} (was {self.previous if self.previous is not None else 'none'})"

    def plain(self, table: Table) -> Ddl:
        s, n = table.schema, table.name
        return Ddl((ddl.domain_default(s, n, self.default),), (ddl.domain_default(s, n, self.previous),), True, (),
                   hazards.NONE)


@dataclass(frozen=True)
class DomainNotNull(Operation):
    """`ALTER DOMAIN … SET NOT NULL` checks every column of the domain under SHARE (there is no NOT VALID form);
    `DROP NOT NULL` is catalog only."""

    kind = "domain_not_null"
    not_null: bool = True
    used_by: tuple[str, ...] = ()

    def describe(self, table: Table) -> str:
        if not self.not_null:
            return f"domain {table.qualified}: drop not null"
        return f"domain {table.qualified}: set not null ({_users(self.used_by)})"

    def plain(self, table: Table) -> Ddl:
        on = ddl.domain_not_null(table.schema, table.name, True)
        off = ddl.domain_not_null(table.schema, table.name, False)
        if self.not_null:
            return Ddl((on,), (off,), True, (), (Hazard.LONG_RUNNING,) if self.used_by else hazards.NONE)
        return Ddl((off,), (on,), True, (), hazards.NONE)


@dataclass(frozen=True)
class AddDomainCheck(Operation):
    """`ALTER DOMAIN … ADD CONSTRAINT … CHECK (…) NOT VALID`: no table lock, no scan; values written from now on
    are checked. `ValidateDomainCheck` checks the stored ones after commit."""

    kind = "add_domain_check"
    name: str = ""
    expression: str = ""

    def describe(self, table: Table) -> str:
        return f"domain {table.qualified}: add check {self.name} {self.expression} NOT VALID (no table locked)"

    def plain(self, table: Table) -> Ddl:
        s, n = table.schema, table.name
        return Ddl((ddl.domain_add_check(s, n, self.name, self.expression),),
                   (ddl.domain_drop_check(s, n, self.name),), True, (), hazards.NONE)


@dataclass(frozen=True)
class ValidateDomainCheck(Operation):
    """`ALTER DOMAIN … VALIDATE CONSTRAINT …`, after commit: SHARE on every table with a column of the domain while
    it is scanned (Postgres 15; writes wait, reads go on). Fails, changing nothing, if a stored value breaks it."""

    kind = "validate_domain_check"
    transactional = False
    name: str = ""
    used_by: tuple[str, ...] = ()

    def describe(self, table: Table) -> str:
        return f"domain {table.qualified}: validate check {self.name} ({_users(self.used_by)})"

    def plain(self, table: Table) -> Ddl:
        return Ddl((ddl.domain_validate(table.schema, table.name, self.name),), (), True, (),
                   (Hazard.LONG_RUNNING,) if self.used_by else hazards.NONE)


@dataclass(frozen=True)
class DropDomainCheck(Operation):
    """`ALTER DOMAIN … DROP CONSTRAINT …`: ACCESS EXCLUSIVE on the constraint object only, no table lock. Values the
    check kept out may be written from then on."""

    kind = "drop_domain_check"
    name: str = ""
    expression: str = ""

    def describe(self, table: Table) -> str:
        return f"domain {table.qualified}: drop check {self.name} {self.expression}"

    def plain(self, table: Table) -> Ddl:
        s, n = table.schema, table.name
        return Ddl((ddl.domain_drop_check(s, n, self.name),),
                   (ddl.domain_add_check(s, n, self.name, self.expression), ddl.domain_validate(s, n, self.name)),
                   True, (), (Hazard.REMOVES_CONSTRAINT,))
