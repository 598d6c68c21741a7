"""`pfdeploy tune`: the fastest verified deployment of each model on this machine, raced among
every runtime's own settings and proven against the runtime's default (docs/tune.md)."""
from __future__ import annotations

import sys

import click
from rich.text import Text

from ..render import Col, fmt, print_note, print_table
from .bench_progress import RichProgress
from .options import parse_budget, weights_option

def parse_drop(ctx, param, value):
    """'1%', '0.5%' or a fraction '0.01' -> fraction."""
    text = str(value).strip()
    try:
        v = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise click.BadParameter(f"{value!r}: expected a percentage such as 1% or a fraction such as 0.01") from None
    if not 0 <= v < 1:
        raise click.BadParameter(f"{value!r}: must be from 0% to below 100%")
    return v


def split_list(ctx, param, value):
    if value is None:
        return None
    items = tuple(v.strip() for v in value.split(",") if v.strip())
    if not items:
        raise click.BadParameter("expected a comma-separated list")
    return items


@click.command("tune")
@click.argument("models", callback=split_list, metavar="MODEL[,MODEL...]")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda:N or openvino:NAME.")
@click.option("--backends", callback=split_list, metavar="B[,B...]",
              help="Runtimes to race (default: every installed one on the device except torch-compile, "
                   "which compiles for minutes per candidate).")
@click.option("--scenario", type=click.Choice(["latency", "throughput"]), default="latency", show_default=True)
@click.option("--budget", callback=parse_budget, metavar="TIME",
              help="Wall time of the whole tune after export, e.g. 15m (default 4m per model). Races that "
                   "run out of time report their tied candidates.")
@click.option("--batch", type=click.IntRange(1, 4096), default=1, show_default=True)
@click.option("--threads", type=click.IntRange(1, 1024), default=None, help="Default: physical cores.")
@click.option("--max-generations", type=click.IntRange(2, 50), default=6, show_default=True,
              help="Most worker-process generations of a race.")
@click.option("--processes", "final_processes", type=click.IntRange(2, 20), default=4, show_default=True,
              help="Worker processes per deployment in the final rotation.")
@weights_option(extra_help=" With real weights the parity verdicts are real; add --images for the accuracy gate.")
@click.option("--images", type=click.Path(file_okay=False), default=None,
              help="Labelled images (class subfolders, or --labels FILE): each artifact's top-1 is measured "
                   "beside PyTorch fp32's before the race.")
@click.option("--labels", type=click.Path(dir_okay=False), default=None, help="Labels for --images.")
@click.option("--max-drop", callback=parse_drop, default="1%", show_default=True, metavar="PCT",
              help="With --images: a candidate losing more top-1 than this to PyTorch fp32 is dropped.")
@click.option("--out", "out_dir", default="tuned", show_default=True, metavar="DIR",
              help="Each model's winner is written to DIR/<model> (artifact + tuned.json).")
@click.option("--no-save", is_flag=True, help="Write no tuned directories.")
@click.option("--store", "store_url", metavar="URL",
              help="Results store (path, sqlite:///..., postgresql://...); default $PFDEPLOY_STORE or "
                   "./pfdeploy-results.db.")
@click.option("--tag", help="Tag of the stored runs.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable result on stdout.")
@click.option("--wide", is_flag=True, help="Table: every column, even where the terminal is narrower.")
def command(models, device, backends, scenario, budget, batch, threads, max_generations, final_processes, weights,
            images, labels, max_drop, out_dir, no_save, store_url, tag, as_json, wide):
    """Race every runtime's settings for each MODEL and name the fastest deployment that still
    computes what PyTorch computes: per runtime and overall, each with its speedup over that
    runtime's default and its interval. Eliminations are paired comparisons of the across-runs
    estimator (fresh worker processes per generation); a winner is declared only when its
    interval excludes the runner-up, otherwise the tie is reported. Exit codes: 0 done, 1 a user
    error or nothing could be raced, 2 bad usage, 130/143 interrupted (finished races are kept)."""
    from ..config import default_store_url
    from ..devices import parse_device
    from ..errors import UserError
    from ..render import console, err_console, esc, to_json
    from ..store import open_store
    from ..tune.run import TuneConfig, tune
    from ..zoo import canonical_name

    # everything that can be checked is checked before anything is exported, raced or stored, with
    # bench's own helpers (docs/reliability.md): model names, device, images, backends, --threads
    # against the usable CPUs, --batch against the memory, the weights, every OUT/<model> target
    from ..preflight import check_batch_memory, check_threads
    from ..zoo import get_spec

    names = tuple(dict.fromkeys(canonical_name(m) for m in models))  # an unknown model: one line, exit 2
    for m in names:
        get_spec(m)  # an unknown timm:<name> too (exit 2), before a run of dropped candidates is stored
    parse_device(device)
    from .bench_options import check_images

    check_images(images, labels)
    if backends:
        from ..backends import get_backend

        for b in backends:
            get_backend(b)
    check_threads(threads)
    check_batch_memory(names, (batch,))
    if weights not in (None, "synthetic"):
        from ..pretrained import plan_models

        plan_models(names, weights)  # a choice that fits none of a model: exit 2
    out = None
    if not no_save:
        from pathlib import Path

        from ..outputs import check_output_dir
        from ..tune.artifact.write import check_target

        out = check_output_dir(Path(out_dir), "--out")
        for m in names:
            check_target(out / m)  # a file, a link, a user's folder, a tuned dir holding a user's file
    cfg = TuneConfig(models=tuple(models), device=device, backends=backends, scenario=scenario, batch=batch,
                     threads=threads, budget_s=budget, tag=tag, max_generations=max_generations,
                     final_processes=final_processes, weights=None if weights in (None, "synthetic") else weights,
                     images=images, labels=labels, max_drop=max_drop)
    store = open_store(default_store_url(store_url))
    with TuneProgress(err_console, cfg.budget()) as progress:
        result = tune(cfg, store, store_url=store.url, progress=progress, out_dir=None)
    # the result is shown first, then the winners are written: a refused or failed write must not
    # lose the table (the table's "deployable" lines follow once the directories exist)
    data = result.to_dict()
    if not as_json:
        print_tune(console, data, wide=wide)
    failure = None
    if out is not None and result.status == "finished" and result.final_run:
        from ..tune.run import winners_of, write_winners

        try:
            write_winners(result, winners_of(result, store.results(result.final_run)), store, out,
                          PlainProgress())
        except UserError as exc:
            failure = exc
    store.close()
    if as_json:
        sys.stdout.write(to_json(result.to_dict()) + "\n")
    else:
        print_written(console, result.to_dict())
    if failure is not None:
        raise failure
    if result.status == "interrupted":
        from .. import signals

        signum = signals.received() or 2
        err_console.print(esc(f"interrupted by {signals.signal_name(signum)}: finished races kept in "
                              f"{store.url} (runs {', '.join(result.runs) or 'none'})"))
        sys.exit(128 + signum)
    if not any(rt.get("shipped") for m in result.models for rt in m["runtimes"]):
        raise UserError("no candidate could be measured (the reasons are in the table above)")


class PlainProgress:
    """What write_winners reports (the bar is gone by then): nothing."""

    def phase(self, text: str) -> None: ...


def print_written(console, data: dict) -> None:
    """The tuned directories written, after the table."""
    for m in data["models"]:
        ov = m.get("overall")
        if ov and ov.get("dir"):
            print_note(console, f"deployable: {ov['dir']} (pfdeploy bench --tuned {ov['dir']})")


class TuneProgress(RichProgress):
    """The bench progress bar, plus the race: candidates left, the current leader with its
    interval, and one line per finished race. The bar is the tune's time against its budget
    (a race's length is not known in advance: it ends when its intervals separate)."""

    def __init__(self, console, budget_s: float):
        import time

        super().__init__(console)
        self.budget_s = budget_s
        self.t0 = time.monotonic()

    def _elapsed(self) -> float:
        import time

        return min(time.monotonic() - self.t0, self.budget_s)

    def plan(self, total_units):
        self.bar.update(self.task, total=self.budget_s, completed=self._elapsed())

    def update(self, current, completed_units, total_units):
        self.bar.update(self.task, description=self._fit(current), completed=self._elapsed(), total=self.budget_s)

    def race(self, model, backend, runner):
        race = runner.race
        left = race.racing
        data = runner.measured()
        if not left:
            return
        leader = min(left, key=lambda e: data[e.key].median if e.key in data else float("inf"))
        hw = None
        case = runner.cases.get(leader.key)
        if case is not None and len(case.samples) >= 2:
            from ..bench.stats import ci_halfwidth_rel

            hw = ci_halfwidth_rel(case.samples, case.rounds, procs=case.procs)
        med = data[leader.key].median / 1e6 if leader.key in data else None
        text = (f"{model} · {backend}: generation {race.generation}, {len(left)} of {len(race.entrants)} left, "
                f"leader {leader.name} {fmt(med, 3)} ms" + (f" ±{hw:.1%}" if hw is not None else ""))
        self.bar.update(self.task, description=self._fit(text))
        if not self.tty:
            self.console.print(Text(text))

    def race_done(self, model, backend, runtime):
        ship = runtime.get("shipped")
        if ship is None:
            line = f"{model} · {backend}: no candidate measured"
        else:
            vs = ship.get("vs_default") or {}
            line = (f"{model} · {backend}: {ship['status']} {ship['variant']} ({ship['precision']}) "
                    f"{fmt(ship.get('p50_ms'), 3)} ms, {speedup_text(vs)} vs default; "
                    f"{sum(c['status'] == 'eliminated' for c in runtime['candidates'])} eliminated, "
                    f"{sum(c['status'] == 'failed' for c in runtime['candidates'])} dropped, "
                    f"{runtime['generations']} generations")
        self.console.print(Text(line))

    def case_done(self, result):
        r = result.result
        if not r.ok:  # a refused or failed candidate: say why at once
            self.console.print(Text(f" dropped  {result.spec.label}: {r.error or ''}"))


def speedup_text(sp: dict | None) -> str:
    if not sp or sp.get("ratio") is None:
        return "-"
    if sp.get("how") == "itself":
        return "x1 (itself)"
    ci = (f" [{sp['ci_low']:.2f}, {sp['ci_high']:.2f}]" if sp.get("ci_low") is not None
          and sp.get("ci_high") is not None else "")
    return f"x{sp['ratio']:.2f}{ci}"


# the whole table fits 100 columns (checked by tests/test_tune_race.py); ties and the candidates
# raced go on the lines below it
COLUMNS = [Col("runtime"), Col("deployment", wrap=True, min=12), Col("prec"), Col("p50 ms [95% CI]", right=True),
           Col("vs default [95% CI]", right=True), Col("result")]


def print_tune(console, data: dict, wide: bool = False) -> None:
    """One table per model: each runtime's shipped deployment; then the overall winner."""
    for m in data["models"]:
        rows, lines = [], []
        for rt in m["runtimes"]:
            s = rt.get("shipped")
            n = len(rt["candidates"])
            dropped = [c for c in rt["candidates"] if c["status"] == "failed"]
            elim = sum(c["status"] == "eliminated" for c in rt["candidates"])
            line = (f"{rt['backend']}: {n} candidates, {elim} eliminated by a paired interval, "
                    f"{len(dropped)} dropped" + (f" ({', '.join(c['variant'] for c in dropped)})" if dropped else "")
                    + f", {rt.get('generations', 0)} generations")
            if s is not None and s["status"] == "tied":
                line += f"; tied: {s['variant']} ~ {', '.join(s.get('tied_with') or [])}"
            lines.append(line)
            if s is None:
                rows.append([rt["backend"], "-", "-", "-", "-", "none"])
                continue
            fin = rt.get("final") or s
            v = fin.get("p50_ms")
            dg = 1 if isinstance(v, (int, float)) and v >= 100 else 2  # 123.5 [118.1, 132.0]: fits 100 columns
            p50 = (f"{fmt(v, dg)} [{fmt(fin.get('p50_ci_low_ms'), dg)}, "
                   f"{fmt(fin.get('p50_ci_high_ms'), dg)}]")
            rows.append([rt["backend"], s["variant"], s["precision"], p50, speedup_text(s.get("vs_default")),
                         s["status"]])
        ov = m.get("overall")
        title = f"{m['model']}"
        if ov:
            title += (f": fastest {ov['backend']} {ov['variant']} ({ov['precision']})"
                      + (f", {ov['status']}" if ov["status"] != "winner" else ""))
        print_table(console, COLUMNS, rows, title=title, wide=wide)
        for line in lines:
            print_note(console, line, style="dim")
        if ov and ov.get("vs_runner_up"):
            print_note(console, f"vs the runner-up {ov['runner_up']}: {speedup_text(ov['vs_runner_up'])} "
                                f"(paired, final rotation)" + (f"; tied with {', '.join(ov['tied_with'])}"
                                                               if ov.get("tied_with") else ""))
        for b, why in m.get("skipped") or []:
            print_note(console, f"{b}: not raced: {why}", style="dim")
    for note in data.get("notes") or []:
        print_note(console, note, style="yellow")
    print_note(console, f"runs: {', '.join(data['runs'])}" + (f"; final rotation {data['final_run']}"
                                                             if data.get("final_run") else "")
               + f"; store {data['store']}", style="dim")
