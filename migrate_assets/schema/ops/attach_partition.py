"""attach_partition: a partition attached online (see `schema.partitions` for the whole path and the locks).

In the main transaction (`prepare`): a new partition is made as a table of the parent's shape with a CHECK of its
bound (empty, so valid at once); an existing table (a detached partition, or one whose bound changes) gets that
CHECK `NOT VALID`; the parent's default partition gets `CHECK (NOT bound) NOT VALID`. Each is ACCESS EXCLUSIVE on
that one table for an instant, no scan.

After commit (`plain`, one statement per transaction): VALIDATE the checks (SHARE UPDATE EXCLUSIVE: writers go
on while the rows are read), `ATTACH PARTITION` (SHARE UPDATE EXCLUSIVE on the parent; ACCESS EXCLUSIVE on the
partition and the default partition for an instant: the validated checks prove the bound, so neither is scanned),
then the checks are dropped. The undo detaches it again: its rows stay, in a table of its own.

An existing table first gets the parent's indexes it lacks, `CONCURRENTLY` (its keys as constraints `USING INDEX`),
so that ATTACH finds and attaches them instead of building them under its ACCESS EXCLUSIVE lock; the parent's
foreign keys are still checked on its rows by ATTACH under that lock (the description says so). A new partition is
made with the parent's indexes and is empty.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

from migrate_assets.schema import ddl, hazards
from migrate_assets.schema.ddl import ident, q, table_ident
from migrate_assets.schema.model import Table
from migrate_assets.schema.ops.base import Ddl, Operation
from migrate_assets.schema.plan import Hazard

#: what a partition copies from its parent when it is made as a table of its own (not identity: a partition
#: uses its parent's; not comments: `PARTITION OF` copies none either)
_LIKE = ("INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES INCLUDING GENERATED INCLUDING STORAGE "
         "INCLUDING COMPRESSION")


@dataclass(frozen=True)
class AttachPartition(Operation):
    kind = "attach_partition"
    transactional = False
    partition: str = ""
    partition_schema: str = ""
    bound: str = ""  #: `FOR VALUES …` / `DEFAULT`, rendered
    condition: str = ""  #: the condition the bound admits (empty for a default partition)
    check_name: str = ""
    new: bool = True  #: no such table yet: made like the parent
    default_partition: str = ""  #: the parent's default partition, which gets CHECK (NOT bound)
    default_schema: str = ""
    default_check: str = ""
    #: the parent's indexes (and keys) an existing table lacks, built CONCURRENTLY before the attach
    builds: tuple[str, ...] = ()

    def target(self) -> str:
        return self.partition

    def _part(self) -> sql.Identifier:
        return table_ident(self.partition_schema, self.partition)

    def _alter(self, schema: str, name: str, action: str, *args: sql.Composable) -> str:
        return ddl.alter(schema, name, action, *args)

    def describe_prepare(self, table: Table) -> str:
        what = f"create {self.partition_schema}.{self.partition} like {table.qualified}" if self.new else \
            f"check {self.partition_schema}.{self.partition} for the bound (NOT VALID)"
        if self.default_partition:
            what += f"; CHECK (NOT bound) NOT VALID on the default partition {self.default_partition}"
        return what + " (ACCESS EXCLUSIVE on those tables for an instant, no scan)"

    def prepare(self, table: Table) -> Ddl:
        """The main transaction's part."""
        s, n = self.partition_schema, self.partition
        fwd: list[str] = []
        inv: list[str] = []
        if self.new:
            fwd.append(q("CREATE TABLE {} (LIKE {} " + _LIKE + ")", self._part(), table_ident(table.schema, table.name)))
        if self.condition:
            fwd.append(self._alter(s, n, "DROP CONSTRAINT IF EXISTS {}, ADD CONSTRAINT {} CHECK " + "({})" +
                                   ("" if self.new else " NOT VALID"), ident(self.check_name), ident(self.check_name),
                                   sql.SQL(self.condition)))  # noqa: S608 - built by partitions.bound_check
            inv.append(ddl.drop_constraint(s, n, self.check_name))
        if self.default_partition and self.condition:
            fwd.append(self._alter(self.default_schema, self.default_partition,
                                   "DROP CONSTRAINT IF EXISTS {}, ADD CONSTRAINT {} CHECK (NOT {}) NOT VALID",
                                   ident(self.default_check), ident(self.default_check), sql.SQL(self.condition)))  # noqa: S608
            inv.append(ddl.drop_constraint(self.default_schema, self.default_partition, self.default_check))
        # a new table is kept by the undo: once attached it may hold rows written through the parent
        return Ddl(tuple(fwd), tuple(inv), True, (), hazards.ALTER_METADATA)

    def describe(self, table: Table) -> str:
        scans = []
        if self.condition and not self.new:
            scans.append(self.partition)
        if self.default_partition and self.condition:
            scans.append(f"default partition {self.default_partition}")
        how = (f"validate the bound on {', '.join(scans)} (SHARE UPDATE EXCLUSIVE, writers go on), " if scans else "")
        if self.builds:
            how = (f"build the {sum('CONCURRENTLY' in b for b in self.builds)} index(es) of the parent it lacks "
                   "CONCURRENTLY, " + how)
        return (f"attach partition {self.partition_schema}.{self.partition} {self.bound} to {table.qualified}: {how}"
                "ATTACH PARTITION (SHARE UPDATE EXCLUSIVE on the parent, ACCESS EXCLUSIVE on the partition"
                + (" and the default partition" if self.default_partition else "") + " for an instant"
                + (", no scan" if self.condition else "; a default partition is scanned") + "), then drop the checks"
                + ("" if self.new else "; the parent's foreign keys are checked on its rows by ATTACH under that ACCESS "
                                       "EXCLUSIVE lock"))

    def plain(self, table: Table) -> Ddl:
        s, n = self.partition_schema, self.partition
        fwd: list[str] = list(self.builds)
        if self.condition and not self.new:
            fwd.append(ddl.validate_constraint(s, n, self.check_name))
        if self.default_partition and self.condition:
            fwd.append(ddl.validate_constraint(self.default_schema, self.default_partition, self.default_check))
        fwd.append(q("ALTER TABLE {} ATTACH PARTITION {} {}", table_ident(table.schema, table.name), self._part(),
                     sql.SQL(self.bound)))  # noqa: S608 - rendered by partitions.Bound
        if self.condition:
            fwd.append(ddl.drop_constraint(s, n, self.check_name))
        if self.default_partition and self.condition:
            fwd.append(ddl.drop_constraint(self.default_schema, self.default_partition, self.default_check))
        hz: list[Hazard] = []
        if self.default_partition or not self.new:
            hz.append(Hazard.LONG_RUNNING)  # the VALIDATE scans
        if self.default_partition:
            hz.append(Hazard.ACCESS_EXCLUSIVE_LOCK)  # the default partition, for an instant
        if not self.condition:
            hz += [Hazard.ACCESS_EXCLUSIVE_LOCK, Hazard.LONG_RUNNING]  # a default partition attached is scanned
        inv = (q("ALTER TABLE {} DETACH PARTITION {}", table_ident(table.schema, table.name), self._part()),)
        return Ddl(tuple(fwd), inv, True, (), tuple(dict.fromkeys(hz)))
