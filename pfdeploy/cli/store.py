"""`pfdeploy store`: the results store's schema: what it is, upgrading it, the run-file schema."""
from __future__ import annotations

import json
import sys

import click

from ..render import emit, table

STORE_HELP = ("Results store: path, sqlite:///path or postgresql://... (default: $PFDEPLOY_STORE or "
              "./pfdeploy-results.db).")


@click.group("store")
def command():
    """The results store's schema: inspect it, upgrade it, publish the run-file schema."""


@command.command("info")
@click.option("--store", "store_url", metavar="URL", help=STORE_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def info(store_url, as_json):
    """The store's location, schema and revision, and whether this pfdeploy would upgrade it."""
    from .. import __version__, migrations
    from ..store import SCHEMA_VERSION, open_store

    with open_store(store_url, create=False, readonly=True, migrate=False) as store:
        st = store.schema_state()
        n_runs = len(store.runs()) if not migrations.needs_upgrade(st) or store.readonly else None
        data = {"store": store.url, "kind": store.kind, "schema": st.schema, "revision": st.revision,
                "read_compat": st.read_compat, "written_by": st.written_by, "runs": n_runs,
                "pfdeploy": __version__, "pfdeploy_schema": SCHEMA_VERSION,
                "needs_upgrade": migrations.is_known(st) and migrations.needs_upgrade(st),
                "readonly": store.readonly, "readonly_reason": store.readonly_reason}

    def human(console):
        rows = [(k, "-" if v is None else str(v)) for k, v in data.items()]
        console.print(table(["", ""], rows, title="results store"), markup=False)

    emit(data, as_json, human)


@command.command("upgrade")
@click.option("--store", "store_url", metavar="URL", help=STORE_HELP)
@click.option("--dry-run", is_flag=True, help="Show the revisions and SQL an upgrade would run; change nothing.")
def upgrade(store_url, dry_run):
    """Upgrade the store to this pfdeploy's schema (every command that opens a store does this on
    its own; this verb does it explicitly, or shows what it would do). A SQLite store is first
    backed up beside itself; PostgreSQL upgrades under an advisory lock."""
    from ..store import SCHEMA_VERSION, open_store

    with open_store(store_url, create=False, migrate=False) as store:
        plan = store.upgrade_plan()
        if not plan.steps:
            click.echo(f"{store.url}: schema {plan.current.schema} (revision {plan.current.revision}), "
                       "up to date")
            return 0
        click.echo(f"{store.url}: schema {plan.current.schema} -> {SCHEMA_VERSION}:")
        for schema, rev, summary in plan.steps:
            click.echo(f"  {rev} (schema {schema}): {summary}")
        if dry_run:
            click.echo("SQL (not run):")
            click.echo(plan.sql.rstrip())
            return 0
        store._upgrade(plan.current)
        done = store.schema_state()
        backup = f"; backup {store.last_backup}" if store.last_backup else ""
        click.echo(f"upgraded to schema {done.schema} (revision {done.revision}){backup}")
    return 0


@command.command("schema")
@click.option("--out", metavar="FILE", help="Write the JSON Schema to FILE (atomically) instead of stdout.")
def schema(out):
    """Print the JSON Schema of the run file (`results --format json`, `bench --json`), as
    published in docs/run-file.schema.json."""
    from ..runfile import json_schema

    text = json.dumps(json_schema(), indent=2) + "\n"
    if out is None:
        sys.stdout.write(text)
        return 0
    from pathlib import Path

    from ..errors import UsageError
    from ..outputs import atomic_write_bytes

    p = Path(out).expanduser()
    if not p.parent.is_dir():
        raise UsageError(f"--out {out}: directory {p.parent} does not exist")
    atomic_write_bytes(p, text.encode("utf-8"))
    click.echo(f"wrote {p}", err=True)
    return 0
