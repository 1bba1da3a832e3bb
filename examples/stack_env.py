"""Print `export NAME=value` lines that point examples/migrate.yaml at a running local stack.

`eval "$(python examples/stack_env.py .migrate/run)"` — used by scripts/run.sh and scripts/dev.sh. The stack picks
free ports, so the example file reads every endpoint from these variables (with `${VAR:-default}` fallbacks).
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from migrate_assets.local import stack

HERE = Path(__file__).resolve().parent


def stack_env(state_dir: Path, database: str | None = None) -> dict[str, str]:
    database = database or os.environ.get("MIGRATE_ASSETS_EXAMPLE_DB", "shop")
    info = stack.load_state(state_dir.resolve())
    props = info.iceberg_properties
    return {
        "DATABASE_URL": info.pg_dsn.rsplit("/", 1)[0] + "/" + database,
        "KAFKA_CONNECT_URL": info.connect_url,
        "KAFKA_BOOTSTRAP_SERVERS": info.bootstrap,
        "SCHEMA_REGISTRY_URL": info.registry_url,
        "ICEBERG_URI": props["uri"],
        "ICEBERG_WAREHOUSE": props["warehouse"],
        "MIGRATE_ASSETS_CONFIG": str(HERE / "migrate.yaml"),
    }


if __name__ == "__main__":
    for name, value in stack_env(Path(sys.argv[1] if len(sys.argv) > 1 else ".migrate/run")).items():
        print(f"export {name}={shlex.quote(value)}")
