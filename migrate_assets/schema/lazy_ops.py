"""`migrate_assets.schema.ops`, imported on first use.

The operation package is ~30 modules of dataclasses (~80 ms to import); `plan` needs it only when something
changes, and every CI `plan --check` of an unchanged schema would pay it. The planner's modules take `ops` from
here at run time (and the real package under TYPE_CHECKING, so types stay checked).
"""

from __future__ import annotations

from typing import Any


class _LazyOps:
    def __getattr__(self, name: str) -> Any:
        from migrate_assets.schema import ops as real

        value = getattr(real, name)
        setattr(self, name, value)  # the next lookup is a plain attribute
        return value


ops: Any = _LazyOps()
