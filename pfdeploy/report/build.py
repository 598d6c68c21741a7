"""Build the static site: collect run documents, render the Jinja2 templates (autoescaped), write
into a temporary directory beside OUT and rename it into place."""
from __future__ import annotations

import datetime as _dt
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from .. import __version__
from ..errors import UserError
from . import data as D

ASSETS = Path(__file__).resolve().parent / "assets"
STATIC = ("report.css", "report.js")
MARKER = ".pfdeploy-report"  # written into every report; only such a directory is ever replaced


@dataclass
class ReportSummary:
    out: Path
    pages: list[str] = field(default_factory=list)
    runs: int = 0
    cases: int = 0
    sections: int = 0

    def to_dict(self) -> dict:
        return {"out": str(self.out), "index": str(self.out / "index.html"), "pages": self.pages,
                "runs": self.runs, "cases": self.cases, "sections": self.sections}


def _env():
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    env = Environment(loader=FileSystemLoader(str(ASSETS)),
                      autoescape=select_autoescape(enabled_extensions=("html", "j2"), default=True),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(num=D.num, millions=D.millions, pretty_json=D.pretty_json, slug=D.slug, when=D.when, load=D.load)
    return env


def _check_out(out: Path) -> None:
    from ..outputs import check_output_dir

    check_output_dir(out.parent, "--out")  # the site is built beside OUT and renamed into place
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).exists():
        raise UserError(f"--out {out} is a non-empty directory that is not a pfdeploy report; "
                        "choose an empty or new directory (it is replaced as a whole)")


def load_docs(store) -> list[dict]:
    """Every run of the store as a run document, newest first."""
    return [store.export_run(run["id"]) for run in store.runs()]  # run records of the store, not results


def build_report(out: str | os.PathLike, store=None, store_url: str | None = None, title: str | None = None,
                 docs: Sequence[dict] | None = None, threshold: float = 0.05) -> ReportSummary:
    """Write the site to `out` (replaced as a whole, atomically by rename). Runs come from
    `docs` (run documents, any order) or else from `store` / the store at `store_url`."""
    out = Path(out).expanduser().resolve()
    _check_out(out)
    if docs is None:
        if store is None:
            from ..compare import existing_store

            store = existing_store(store_url)
        docs = load_docs(store)
    from ..claims import RunInfo, typed_doc

    plain = sorted(docs, key=lambda d: RunInfo.of(d).started_at, reverse=True)  # newest first
    docs = [typed_doc(d) for d in plain]  # each document's rows read as typed results once for every page
    if not docs:
        raise UserError("the results store has no runs yet: run `pfdeploy bench` first")

    env = _env()
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    common = {"title": title or "pfdeploy benchmarks", "generated_at": now, "version": __version__}
    runs = []
    for d in docs:
        info = RunInfo.of(d)
        # the run record as the pages show it (a plain dict of the run file, not a result)
        run = {**(d.get("run") or {}), "page": f"runs/{D.slug(info.id)}.html", "machine_label": info.machine,
               "counts": D._status_counts(d["results"]), "ab_mark": D.ab_mark(d["results"])}
        runs.append(run)
    sections = D.overview_sections(docs)
    claims = D.claims_sections(docs)
    best = D.best_sections(docs)  # None without a `pfdeploy tune` final run: no section
    cases = D.history_cases(list(reversed(plain)), threshold=threshold)  # compare reads run files
    from .serving import serving_section  # issue 31: LoadGen's p99-vs-QPS curves (None: no LoadGen rows)

    serving = serving_section(docs)
    for s in sections:
        s["run_page"] = f"runs/{D.slug(RunInfo.of(s).id)}.html"
    for run in runs:  # an A/B run links to its other side
        if run["ab_mark"] and run["ab_mark"]["other_run_id"]:
            run["ab_mark"]["other_page"] = f"runs/{D.slug(str(run['ab_mark']['other_run_id']))}.html"

    from ..publish import make_temp_dir

    tmp = make_temp_dir(out.parent, out.name, what="--out")
    summary = ReportSummary(out=out, runs=len(docs), cases=len(cases), sections=len(sections))
    try:
        def write(rel: str, template: str, **ctx):
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            root = "../" * rel.count("/")
            html = env.get_template(template).render(**common, root=root, page=rel, **ctx)
            path.write_text(html, encoding="utf-8")
            summary.pages.append(rel)

        write("index.html", "overview.html.j2", sections=sections, runs=runs, claims=claims, best=best,
              serving=serving)
        from ..render import to_json

        (tmp / "claims.json").write_text(to_json(claims["json"]) + "\n", encoding="utf-8")
        summary.pages.append("claims.json")
        if best is not None:  # what `pfdeploy claims --at best --json` prints
            (tmp / "claims-best.json").write_text(to_json(best["json"]) + "\n", encoding="utf-8")
            summary.pages.append("claims-best.json")
        write("history.html", "history.html.j2", cases=cases, index=D.filter_index(cases),
              filters=D.FILTERS, threshold=threshold)
        write("runs.html", "runs.html.j2", runs=runs)
        for d, run in zip(docs, runs):
            write(run["page"], "run.html.j2", run=run, info=D.run_summary(d))
        (tmp / "assets").mkdir()
        for name in STATIC:
            shutil.copyfile(ASSETS / name, tmp / "assets" / name)
        (tmp / MARKER).write_text(f"pfdeploy {__version__} report, {now}\n", encoding="utf-8")
        _swap_into_place(tmp, out)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):  # full disk, permissions changed while building
            raise UserError(f"cannot write --out {out}: {exc.strerror or exc}") from None
        raise
    return summary


def _swap_into_place(tmp: Path, out: Path) -> None:
    """Replace `out` by `tmp` (pfdeploy.publish: the old report renamed aside, the new one in,
    the old deleted). A reader sees the old site or the new one, never a half-written mix."""
    from ..outputs import publish_tree_mode
    from ..publish import publish_dir, target_lock

    publish_tree_mode(tmp)  # mkdtemp makes 0700 directories; a report gets the umask's mode
    with target_lock(out, "--out"):  # two reports into one --out: one at a time, no .old-* left
        _check_out(out)  # again: something may have appeared while building
        publish_dir(tmp, out, replace=True, what="--out")
