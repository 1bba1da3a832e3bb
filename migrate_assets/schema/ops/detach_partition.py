"""detach_partition: a partition the spec no longer lists (or whose bound changes) leaves its parent; its rows stay,
in a table of its own. Never a drop unless the spec says `drop: true` for it (then `deletes_data`).

`DETACH PARTITION … CONCURRENTLY` when Postgres allows it (the parent has no default partition), outside any
transaction block: a first transaction marks the partition detach-pending under SHARE UPDATE EXCLUSIVE on the
parent and the partition; then it waits for the transactions that use the parent, and a second one takes SHARE
UPDATE EXCLUSIVE on the parent and ACCESS EXCLUSIVE on the partition (`pg_locks` shows it waiting behind a reader of
the partition: tests/schema/test_partitions.py) — queries through the parent no longer read the partition by then,
its direct readers wait for the instant. Otherwise a plain DETACH in the main transaction: ACCESS EXCLUSIVE on the parent, the partition
and the default partition (`pg_locks`), for an instant. A concurrent detach that is interrupted leaves the
partition "detach pending": the next plan completes it with `ALTER TABLE … DETACH PARTITION … FINALIZE` (in the
transaction), then attaches it again if the spec still lists it. The undo attaches the table
again under its old bound (Postgres scans it under ACCESS EXCLUSIVE on the partition)."""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

from migrate_assets.schema import ddl
from migrate_assets.schema.ddl import q, table_ident
from migrate_assets.schema.model import Table
from migrate_assets.schema.ops.base import Ddl, Operation
from migrate_assets.schema.plan import Hazard


@dataclass(frozen=True)
class DetachPartition(Operation):
    kind = "detach_partition"
    partition: str = ""
    partition_schema: str = ""
    bound: str = ""  #: the live bound (for the undo)
    concurrently: bool = False
    drop: bool = False  #: the spec says the partition goes, with its rows
    #: finish a `DETACH … CONCURRENTLY` that was interrupted (the partition is "detach pending")
    finalize: bool = False
    #: a CHECK the detach left on the table (FINALIZE adds one of the old bound) to drop, when it is attached again
    drop_check: str = ""

    def after_commit(self) -> bool:
        return self.concurrently

    def target(self) -> str:
        return self.partition

    def describe(self, table: Table) -> str:
        if self.finalize:
            return (f"finish the interrupted detach of {self.partition_schema}.{self.partition} from {table.qualified} "
                    "(DETACH PARTITION … FINALIZE: ACCESS EXCLUSIVE on the partition for an instant); its rows stay in it")
        how = "CONCURRENTLY (after commit: SHARE UPDATE EXCLUSIVE on the parent; waits for its transactions, then ACCESS " \
            "EXCLUSIVE on the partition for an instant)" if self.concurrently else \
            "(ACCESS EXCLUSIVE on the parent, the partition and the default partition for an instant; no " \
            "CONCURRENTLY: the parent has a default partition)"
        if self.drop:
            return f"drop partition {self.partition_schema}.{self.partition} of {table.qualified} and its rows: detach {how}, then DROP TABLE"
        return f"detach partition {self.partition_schema}.{self.partition} ({self.bound}) from {table.qualified} {how}; its rows stay in it"

    def plain(self, table: Table) -> Ddl:
        parent, part = table_ident(table.schema, table.name), table_ident(self.partition_schema, self.partition)
        fwd = [q("ALTER TABLE {} DETACH PARTITION {}" + (" CONCURRENTLY" if self.concurrently else "")
                 + (" FINALIZE" if self.finalize else ""), parent, part)]
        if self.drop_check:
            fwd.append(ddl.drop_constraint(self.partition_schema, self.partition, self.drop_check))
        hz = [Hazard.BREAKS_READERS, Hazard.ACCESS_EXCLUSIVE_LOCK] + ([Hazard.LONG_RUNNING] if self.concurrently else [])
        if self.drop:
            fwd.append(q("DROP TABLE {}", part))
            return Ddl(tuple(fwd), None, False, ("its rows are deleted",),
                       (*hz, Hazard.DELETES_DATA, Hazard.NOT_REVERSIBLE))
        inv = (q("ALTER TABLE {} ATTACH PARTITION {} {}", parent, part, sql.SQL(self.bound)),)  # noqa: S608 - rendered bound
        return Ddl(tuple(fwd), inv, True, ("its rows no longer show in the parent",), tuple(hz))
