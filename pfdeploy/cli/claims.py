"""`pfdeploy claims`: the paper's claims checked against the results store, per machine, device,
runtime and precision, with the release's GPU figures beside them (docs/claims.md)."""
from __future__ import annotations

import click

from ..render import Col, fmt, print_line, print_note, print_table


@click.command("claims")
@click.argument("runs", nargs=-1, metavar="[RUN]...")
@click.option("--store", "store_url", metavar="URL",
              help="Results store (path, sqlite:///..., postgresql://...); default $PFDEPLOY_STORE or "
                   "./pfdeploy-results.db.")
@click.option("--all", "show_all", is_flag=True,
              help="Also list configurations where a claim was not measured (JSON always has them).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (every verdict).")
@click.option("--wide", is_flag=True, help="Table: every column, even where the terminal is narrower "
              "(output that is not a terminal always gets every column).")
def command(runs, store_url, show_all, as_json, wide):
    """Check the paper's claims ("R50-max is faster than ResNet-50", "ViT-S-max is faster than
    DeiT-S", ...) against stored runs: for every machine, device, runtime, precision, batch,
    threads and scenario, the newest run that measured both models gives a verdict from the
    speedup's 95% CI: yes (whole CI above 1), no (at or below 1; "slower" when below), or
    inconclusive; "not measured" where no run has both.

    RUN: run ids, tags, "latest" or run files (.json) to check instead of the whole store."""
    from ..claims import check_claims
    from ..compare import existing_store, load_run
    from ..errors import UserError
    from ..render import emit

    if runs:
        store = None
        docs = []
        for ref in runs:
            if store is None and not ref.lower().endswith(".json"):
                store = existing_store(store_url)
            docs.append(load_run(ref, store=store))
    else:
        from ..report.build import load_docs

        docs = load_docs(existing_store(store_url))
    if not docs:
        raise UserError("the results store has no runs yet: run `pfdeploy bench` first")
    data = check_claims(docs)

    def human(console):
        print_claims(console, data, show_all=show_all, wide=wide)

    emit(data, as_json, human)


# priority order for a terminal (0: always shown). The claim wraps between words but keeps room
# for two lines of text; the runtime wraps between its parts; numbers never wrap or get cut.
COLUMNS = [Col("claim", wrap=True, min=26), Col("runtime", wrap=True, min=12), Col("verdict"),
           Col("speedup [95% CI]", right=True), Col("p50 ms PF/base", 1, right=True),
           Col("release GPU PF/base", 2, right=True), Col("params M", 3, right=True), Col("MACs G", 4, right=True)]
VERDICT_STYLE = {"yes": "green", "no": "red", "inconclusive": "yellow", "not measured": "dim"}


def claim_rows(data: dict, verdicts: list[dict]) -> list[list]:
    """The table rows of some verdicts: text cells, the verdict a (word, style) pair."""
    from ..claims import ratio_text

    claims = {c["id"]: c for c in data["claims"]}
    rows = []
    for v in verdicts:
        c = claims[v["claim"]]
        word = "no, slower" if v["slower"] else v["verdict"]
        where = f"{v['backend']} {v['precision']} b{v['batch']} {v['threads']}t"
        if v["scenario"] != "latency":
            where += f" {v['scenario']}"
        ms = (f"{fmt(v['model_p50_ms'], 2)} / {fmt(v['baseline_p50_ms'], 2)}" if v["ratio"] is not None else "-")
        params = "/".join(fmt(v[k] / 1e6 if v[k] else None, 1) for k in ("model_params", "baseline_params"))
        macs = "/".join(fmt(v[k] / 1e9 if v[k] else None, 2) for k in ("model_macs", "baseline_macs"))
        rows.append([c["statement"], where, (word, VERDICT_STYLE[v["verdict"]]), ratio_text(v), ms,
                     c["release_gpu"], params, macs])
    return rows


def print_claims(console, data: dict, show_all: bool = False, wide: bool = False) -> None:
    """One fitted table per machine and device, then the notes on the release's figures and the rule."""
    claims = {c["id"]: c for c in data["claims"]}
    sections: dict[tuple, list] = {}
    for v in data["verdicts"]:
        sections.setdefault((v["machine_id"], v["device"]), []).append(v)
    for (mid, device), vs in sections.items():
        shown = [v for v in vs if show_all or v["verdict"] != "not measured"]
        missing = sorted({claims[v["claim"]]["statement"] for v in vs}
                         - {claims[v["claim"]]["statement"] for v in vs if v["verdict"] != "not measured"})
        title = f"claims on {device} · {data['machines'].get(mid, mid)} ({mid[:12]})"
        if shown:
            print_table(console, COLUMNS, claim_rows(data, shown), title=title, wide=wide)
        else:
            print_line(console, (title, "bold"))
        if missing and not show_all:
            print_note(console, f"not measured on this machine and device: {'; '.join(missing)}", indent=0)
    print_note(console, "release GPU: the PfLayer release's GPU latency (batch 1; GPU, precision and timing method "
                        "not published) and the ratio baseline / PF where it has both; '-': no such figure. Per claim:",
               indent=0)
    for c in data["claims"]:
        print_note(console, f"{c['statement']}: {c['release']}", indent=2)
    print_note(console, f"verdicts: {data['rule']}", indent=0)
