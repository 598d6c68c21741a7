"""The run-reference grammar of `Store.resolve_run` (and so of `results --run`, `compare BASE HEAD`,
`claims RUN`): in this order, an exact run id; 'latest'; a tag (the latest run with it); a run
id prefix (unique, at least MIN_PREFIX characters); a git commit prefix (at least MIN_PREFIX
characters; the latest run on that commit). Unknown or ambiguous references are one UserError
line saying which runs matched."""
from __future__ import annotations

import sqlalchemy as sa

from ..errors import UsageError, UserError
from ..validate import check_text
from .schema import runs_table

MIN_PREFIX = 4  # shortest run-id or commit prefix resolve_run accepts


def clean_ref(ref) -> str:
    """The reference as text, stripped; empty or not UTF-8 is a UsageError."""
    ref = check_text(str(ref or "").strip(), "run reference")
    if not ref:
        raise UsageError("empty run reference; give a run id (or prefix), a tag, a git commit or 'latest'")
    return ref


def find_run(conn, ref: str, where: str):
    """The runs-table row `ref` names (see the module docstring), read through `conn`; `where`
    names the store in errors."""
    r = runs_table
    order = (r.c.started_at.desc(), r.c.id.desc())
    exact = conn.execute(sa.select(r).where(r.c.id == ref)).first()
    if exact is not None:
        return exact
    if ref.lower() == "latest":
        row = conn.execute(sa.select(r).order_by(*order).limit(1)).first()
        if row is None:
            raise UserError(f"no runs in {where} yet; run `pfdeploy bench` first")
        return row
    row = conn.execute(sa.select(r).where(r.c.tag == ref).order_by(*order).limit(1)).first()
    if row is not None:
        return row
    if len(ref) < MIN_PREFIX:
        raise UserError(f"no run, tag or commit matches {ref!r} in {where} "
                        f"(id and commit prefixes need at least {MIN_PREFIX} characters)")
    low = ref.lower()
    by_id = conn.execute(sa.select(r).where(r.c.id.startswith(low, autoescape=True))
                         .order_by(*order).limit(6)).all()
    by_commit = conn.execute(sa.select(r).where(r.c.git_commit.startswith(low, autoescape=True))
                             .order_by(*order)).all()
    commits = sorted({row.git_commit for row in by_commit})
    if len(by_id) > 1:
        ids = ", ".join(row.id[:12] for row in by_id[:5])
        raise UserError(f"run reference {ref!r} is ambiguous: it starts {len(by_id)}"
                        f"{'+' if len(by_id) > 5 else ''} run ids ({ids}); give more characters")
    if len(commits) > 1:
        raise UserError(f"run reference {ref!r} is ambiguous: it starts commits "
                        f"{', '.join(c[:12] for c in commits[:5])}; give more characters")
    if by_id and by_commit and by_id[0].id != by_commit[0].id:
        raise UserError(f"run reference {ref!r} is ambiguous: it starts run id {by_id[0].id[:12]} "
                        f"and commit {commits[0][:12]}; give more characters")
    if by_id:
        return by_id[0]
    if by_commit:
        return by_commit[0]
    raise UserError(f"no run, tag or commit matches {ref!r} in {where}")
