"""`pfdeploy claims`: the paper's claims checked against the results store, per machine, device,
runtime and precision, with the release's GPU figures beside them (docs/claims.md)."""
from __future__ import annotations

import click


@click.command("claims")
@click.argument("runs", nargs=-1, metavar="[RUN]...")
@click.option("--store", "store_url", metavar="URL",
              help="Results store (path, sqlite:///..., postgresql://...); default $PFDEPLOY_STORE or "
                   "./pfdeploy-results.db.")
@click.option("--all", "show_all", is_flag=True,
              help="Also list configurations where a claim was not measured (JSON always has them).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (every verdict).")
def command(runs, store_url, show_all, as_json):
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
        print_claims(console, data, show_all=show_all)

    emit(data, as_json, human)


def print_claims(console, data: dict, show_all: bool = False) -> None:
    from rich.markup import escape

    from ..claims import ratio_text
    from ..render import fmt, table

    claims = {c["id"]: c for c in data["claims"]}
    sections: dict[tuple, list] = {}
    for v in data["verdicts"]:
        sections.setdefault((v["machine_id"], v["device"]), []).append(v)
    style = {"yes": "green", "no": "red", "inconclusive": "yellow", "not measured": "dim"}
    for (mid, device), vs in sections.items():
        shown = [v for v in vs if show_all or v["verdict"] != "not measured"]
        missing = sorted({claims[v["claim"]]["statement"] for v in vs}
                         - {claims[v["claim"]]["statement"] for v in vs if v["verdict"] != "not measured"})
        rows = []
        for v in shown:
            c = claims[v["claim"]]
            word = "no, slower" if v["slower"] else v["verdict"]
            where = f"{v['backend']} {v['precision']} b{v['batch']} {v['threads']}t"
            if v["scenario"] != "latency":
                where += f" {v['scenario']}"
            ms = (f"{fmt(v['model_p50_ms'], 2)} / {fmt(v['baseline_p50_ms'], 2)}" if v["ratio"] is not None else "-")
            params = "/".join(fmt(v[k] / 1e6 if v[k] else None, 1) for k in ("model_params", "baseline_params"))
            macs = "/".join(fmt(v[k] / 1e9 if v[k] else None, 2) for k in ("model_macs", "baseline_macs"))
            rows.append((escape(c["statement"]), escape(where), f"[{style[v['verdict']]}]{word}[/]",
                         ratio_text(v), ms, params, macs, c["release_gpu"]))
        title = escape(f"claims on {device} · {data['machines'].get(mid, mid)} ({mid[:12]})")
        if rows:
            console.print(table(["claim", "runtime", "verdict", "speedup [95% CI]", "p50 ms PF/base",
                                 "params M", "MACs G", "release GPU PF/base"], rows, title=title,
                                justify_right=["speedup [95% CI]", "p50 ms PF/base", "params M", "MACs G",
                                               "release GPU PF/base"]))
        else:
            console.print(title)
        if missing and not show_all:
            console.print(escape(f"not measured on this machine and device: {'; '.join(missing)}"))
    console.print("release GPU: the PfLayer release's GPU latency (batch 1; GPU, precision and timing method not "
                  "published) and the ratio baseline / PF where it has both; '-': no such figure. Per claim:")
    for c in data["claims"]:
        console.print(escape(f"  {c['statement']}: {c['release']}"))
    console.print(escape(f"verdicts: {data['rule']}"))
