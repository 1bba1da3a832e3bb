"""`migrate-assets dagster-config from-resource MODULE:ATTR [--out FILE]` and `… to-resource`: migrate.yaml generated
from the Dagster project resource, and the resource for a migrate.yaml (docs/dagster.md, *Resources*).

`from-resource` imports `MODULE` and takes `ATTR`: a `MigrateProjectResource`, or a `Definitions` holding one (the
resource `project`, or `--resource KEY`). Every `EnvVar` of the resource is written as a `${VAR}` reference, never
its value; a literal secret is refused. `to-resource` prints the resource for the `--config` file, its `${VAR}`
references as `EnvVar`s. Dagster is imported only when one of them runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from migrate_assets.cli.output import Result
from migrate_assets.errors import UsageError


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("dagster-config", help="migrate.yaml from the Dagster project resource, and back",
                       description="Generate migrate.yaml from a MigrateProjectResource (EnvVars written as ${VAR}), "
                       "or show the resource for a migrate.yaml.\n\nexamples:\n"
                       "  migrate-assets dagster-config from-resource my_pkg.definitions:defs --out migrate.yaml\n"
                       "  migrate-assets --config migrate.yaml dagster-config to-resource",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = p.add_subparsers(dest="dagster_config_action", metavar="ACTION", required=True)
    out = actions.add_parser("from-resource", help="write migrate.yaml from a MigrateProjectResource")
    out.add_argument("target", metavar="MODULE:ATTR", help="a MigrateProjectResource, or Definitions holding one")
    out.add_argument("--resource", default="project", metavar="KEY",
                     help="the resource key in a Definitions (default: project)")
    out.add_argument("--out", metavar="FILE", help="write the file here (default: print it)")
    out.add_argument("--force", action="store_true", help="replace FILE when it exists")
    out.set_defaults(func=cmd_from_resource)
    back = actions.add_parser("to-resource", help="show the MigrateProjectResource for the --config file")
    back.set_defaults(func=cmd_to_resource)


def _resource(target: str, key: str) -> Any:
    from importlib import import_module

    from dagster import Definitions

    from migrate_assets.dagster_resources import MigrateProjectResource

    module, sep, attr = target.partition(":")
    if not sep or not module or not attr:
        raise UsageError(f"{target!r}: expected MODULE:ATTR (e.g. my_pkg.definitions:defs)", file="<command line>",
                         key="MODULE:ATTR")
    try:
        found = getattr(import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise UsageError(f"{target}: cannot load it: {exc}", file="<command line>", key="MODULE:ATTR") from None
    if isinstance(found, Definitions):
        found = (found.resources or {}).get(key)
    if not isinstance(found, MigrateProjectResource):
        raise UsageError(f"{target}: expected a MigrateProjectResource or a Definitions with one as the resource "
                         f"{key!r} (got {type(found).__name__})", file="<command line>", key="MODULE:ATTR")
    return found


def cmd_from_resource(args: argparse.Namespace) -> Result:
    from migrate_assets.dagster_resources import project_yaml

    text = project_yaml(_resource(args.target, args.resource))
    if args.out:
        out = Path(args.out)
        if out.exists() and not args.force:
            raise UsageError(f"{out} exists: pass --force to replace it", file="<command line>", key="--out")
        out.write_text(text)
    data = {"target": args.target, "out": args.out, "yaml": text}
    return Result(data, text=lambda d: f"Wrote {d['out']}." if d["out"] else d["yaml"].rstrip("\n"))


def cmd_to_resource(args: argparse.Namespace) -> Result:
    from dagster import EnvVar

    from migrate_assets.config import find_config_file
    from migrate_assets.dagster_resources import resource_from_yaml

    res = resource_from_yaml(find_config_file(args.config))
    fields: dict[str, Any] = {}
    for name in ("dsn", "kafka_connect_url", "schema_registry_url", "iceberg_properties"):
        value = getattr(res, name)
        if value is not None:
            fields[name] = ({k: {"env": v.env_var_name} if isinstance(v, EnvVar) else v for k, v in value.items()}
                            if isinstance(value, dict) else
                            {"env": value.env_var_name} if isinstance(value, EnvVar) else value)
    return Result({"config_path": res.config_path, "fields": fields}, text=_python)


def _python(d: dict[str, Any]) -> str:
    def lit(v: Any) -> str:
        if isinstance(v, dict) and set(v) == {"env"}:
            return f"EnvVar({v['env']!r})"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k!r}: {lit(x)}" for k, x in v.items()) + "}"
        return repr(v)

    args = [f"config_path={d['config_path']!r}", *(f"{k}={lit(v)}" for k, v in d["fields"].items())]
    return ("from dagster import EnvVar\nfrom migrate_assets.dagster_resources import MigrateProjectResource\n\n"
            "project = MigrateProjectResource(" + ",\n                                 ".join(args) + ")")
