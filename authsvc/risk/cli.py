"""``risk`` command group: simulate → replay → report. Plain click; needs no Flask app context."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from dataclasses import asdict, fields

import click

from .config import RiskConfig
from .geo import GeoResolver

__all__ = ["risk"]

risk = click.Group("risk", help="Risk engine evaluation: synthetic logins, replay, report.")


@risk.command("simulate")
@click.option("--users", "-n", type=click.IntRange(min=1), default=10_000, show_default=True, help="Existing accounts.")
@click.option("--days", "-d", type=click.IntRange(min=1), default=180, show_default=True)
@click.option("--seed", "-s", type=int, default=1, show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), required=True)
@click.option("--geoip-dir", type=click.Path(file_okay=False, exists=True), envvar="AUTHSVC_GEOIP_DIR",
              help="Folder with asn-ipv4-num.csv.gz and geo-whois-asn-country.mmdb; synthetic networks without it.")
@click.option("--probe-rate", type=click.FloatRange(0, 1), default=0.05, show_default=True,
              help="ATO probes per successful login with earlier history.")
@click.option("--unknown-share", type=click.FloatRange(0, 0.9), default=0.45, show_default=True,
              help="Share of rows that are failures on accounts that do not exist.")
@click.option("--world", type=click.Choice(["a", "b"]), default="a", show_default=True,
              help="a: the calibrated world; b: an independently parameterised one (more UA strings, sticky "
                   "CGNAT, more travel and VPN use); see docs/RISK.md.")
@click.option("--campaign-rows", type=(click.IntRange(min=1), click.IntRange(min=1)), default=(4000, 2500),
              show_default=True, metavar="STUFFING SPRAYING",
              help="Average rows per stuffing / spraying campaign (smaller: more campaigns for the report to resample).")
def simulate_cmd(users: int, days: int, seed: int, output: str, geoip_dir: str | None, probe_rate: float,
                 unknown_share: float, world: str, campaign_rows: tuple[int, int]) -> None:
    """Write synthetic logins in the RBA dataset schema (+ an 'Attack Type' column)."""
    from .evaluation.simulate import WORLDS, SimParams, simulate

    t0 = time.perf_counter()
    params = SimParams(users=users, days=days, seed=seed, probe_rate=probe_rate, unknown_account_share=unknown_share,
                       stuffing_campaign_rows=campaign_rows[0], spraying_campaign_rows=campaign_rows[1],
                       **WORLDS[world])  # type: ignore[arg-type]
    summary = simulate(params, output, geoip_dir=geoip_dir)
    click.echo(
        f"wrote {summary.rows} rows for {summary.users} accounts to {output} in {time.perf_counter() - t0:.1f} s "
        f"({'real' if summary.real_geo else 'synthetic'} IP/ASN data); success {summary.success_share:.1%}, "
        f"attack IP {summary.attack_ip_share:.1%}, unknown accounts {summary.unknown_share:.1%}",
        err=True,
    )
    click.echo(json.dumps(summary.by_type, sort_keys=True), err=True)


@risk.command("replay")
@click.argument("logins", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), required=True)
@click.option("--asn-csv", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="ASN ranges CSV (repeatable); used only for rows without an ASN column value.")
@click.option("--country-mmdb", type=click.Path(exists=True, dir_okay=False),
              help="Country MaxMind-DB; used only for rows without a Country value.")
@click.option("--no-velocity", is_flag=True, help="Do not derive velocity counters from earlier rows.")
@click.option("--model", type=click.Choice(["authsvc", "reference"]), default="authsvc", show_default=True,
              help="'reference': the plain Freeman model of issue 16 (no signals, no clipping; takes no --set).")
@click.option("--set", "overrides", multiple=True, metavar="FIELD=VALUE",
              help="Override a numeric RiskConfig field, e.g. --set prior_weight=0, or a tuple of numbers, e.g. "
                   "--set mu_ip=0.5,0.25,0.17,0.08 (repeatable).")
@click.option("--weights", "weights_file", type=click.Path(exists=True, dir_okay=False),
              help="A weights file written by `risk fit`: score as the live engine would with it.")
def replay_cmd(logins: str, output: str, asn_csv: tuple[str, ...], country_mmdb: str | None, no_velocity: bool,
               model: str, overrides: tuple[str, ...], weights_file: str | None) -> None:
    """Score every row from what was learned before it; learn from successful rows. Writes index,score,decision,reasons."""
    from .model import RiskEngine
    from .evaluation.replay import ReplayInputError, replay

    geo = GeoResolver(asn_csv=list(asn_csv) or None, country_mmdb=country_mmdb) if (asn_csv or country_mmdb) else None
    if model == "reference":
        from .evaluation.reference import ReferenceModel

        if overrides:
            raise click.BadParameter("--set applies to the authsvc model only", param_hint="--set")
        engine, velocity = ReferenceModel(geo=geo), False
    else:
        config = _config(overrides)
        if weights_file:
            from .weights import WeightsError, load_weights

            try:
                config = load_weights(weights_file, config)
            except WeightsError as exc:
                raise click.BadParameter(str(exc), param_hint="--weights") from None
        engine, velocity = RiskEngine(config=config, geo=geo), not no_velocity
    try:
        stats = replay(logins, output, engine=engine, velocity=velocity)  # type: ignore[arg-type]
    except ReplayInputError as exc:
        with contextlib.suppress(OSError):
            os.unlink(output)  # a partial score file would pass for a whole one
        raise click.ClickException(f"{logins}: {exc}") from None
    click.echo(f"replayed {stats.rows} rows in {stats.seconds:.1f} s: {stats.rows_per_second:,.0f} rows/s"
               + (" (input was not in time order: sorted in memory)" if stats.resorted else ""), err=True)


@risk.command("report")
@click.argument("logins", type=click.Path(exists=True, dir_okay=False))
@click.argument("scores", type=click.Path(exists=True, dir_okay=False), nargs=-1, required=True)
@click.option("--name", "names", multiple=True, help="Column name of each SCORES file, in order (default: file stem).")
@click.option("--bootstrap", type=click.IntRange(min=0), default=200, show_default=True)
@click.option("--warmup", type=click.FloatRange(0, 0.95), default=0.25, show_default=True,
              help="Leading fraction of the time span that is replayed but not evaluated.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "json_out", type=click.Path(dir_okay=False, writable=True), help="Also write results as JSON.")
@click.option("--thresholds", help="Comma-separated step-up thresholds: owners' friction and attacks caught at each, "
                                   "for the first SCORES file.")
def report_cmd(logins: str, scores: tuple[str, ...], names: tuple[str, ...], bootstrap: int, warmup: float, seed: int,
               json_out: str | None, thresholds: str | None) -> None:
    """Per attacker type and history bucket: AUC, TPR at low FPR, median re-authentication at 99.5 %/99 % blocked.

    With two or more SCORES files (e.g. `replay` and `replay --model reference` of the same logins) the models are
    put side by side, bootstrapped on the same draws, with the paired difference first − second and its interval.
    """
    from .evaluation.report import (clone_shares, evaluate, evaluate_paired, format_paired, format_table, friction,
                                    threshold_table)

    if names and len(names) != len(scores):
        raise click.BadParameter("give one --name per SCORES file", param_hint="--name")
    labels = list(names) or [os.path.splitext(os.path.basename(p))[0] for p in scores]
    data = _load_or_explain(logins, list(scores), warmup)
    if len(scores) == 1:
        results = evaluate(data, bootstrap=bootstrap, seed=seed)
        table = format_table(results) if results else ""
    else:
        results = evaluate_paired(data, bootstrap=bootstrap, seed=seed)  # type: ignore[assignment]
        table = format_paired(results, labels) if results else ""  # type: ignore[arg-type]
    if not results:
        raise click.ClickException("no attacker type has enough evaluable attacks (need users with earlier history)")
    click.echo(table)
    click.echo("\nattacks that reuse the victim's own ASN and exact UA string (no IP/UA model can separate them):")
    for kind, (n, share) in clone_shares(data).items():
        click.echo(f"  {kind}: {share:.2%} of {n}")
    click.echo("\nowners' friction at each model's own thresholds (legitimate successful logins, evaluated window):")
    fr = {label: friction(data, k) for k, label in enumerate(labels)}
    for label, f in fr.items():
        click.echo(f"  {label}: " + "; ".join(f"{k} {v:.3f}" if v < 10 else f"{k} {v:.0f}" for k, v in f.items()))
    if thresholds:
        try:
            ts = [float(x) for x in thresholds.split(",")]
        except ValueError as exc:
            raise click.BadParameter(f"{thresholds!r}: expected comma-separated numbers") from exc
        click.echo(f"\nstep-up thresholds on {labels[0]}:")
        click.echo(threshold_table(data, ts))
    if json_out:
        with open(json_out, "w", encoding="utf-8") as fh:
            if len(scores) == 1:  # one model: the list of cells, as before
                json.dump([asdict(r) for r in results], fh, indent=1)
            else:
                json.dump({"models": labels, "results": [asdict(r) for r in results], "friction": fr}, fh, indent=1)


@risk.command("ablate")
@click.argument("logins", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--outdir", type=click.Path(file_okay=False), required=True, help="One score file per variant.")
@click.option("--variant", "variants", multiple=True, help="Only these variants (repeatable; 'reference' too).")
@click.option("--warmup", type=click.FloatRange(0, 0.95), default=0.25, show_default=True)
def ablate_cmd(logins: str, outdir: str, variants: tuple[str, ...], warmup: float) -> None:
    """Replay the engine's ablation variants and the reference in one pass; print AUC / TPR per attacker."""
    from .evaluation.ablate import VARIANTS, run_ablations, summarise

    names = list(variants) or [*VARIANTS, "reference"]
    unknown = [n for n in names if n != "reference" and n not in VARIANTS]
    if unknown:
        raise click.BadParameter(f"unknown variant(s) {unknown}; known: {[*VARIANTS, 'reference']}")
    from .evaluation.replay import ReplayInputError

    t0 = time.perf_counter()
    try:
        paths = run_ablations(logins, outdir, names)
    except ReplayInputError as exc:
        raise click.ClickException(f"{logins}: {exc}") from None
    click.echo(f"replayed {len(names)} variants in {time.perf_counter() - t0:.0f} s", err=True)
    click.echo(summarise(_load_or_explain(logins, [str(p) for p in paths], warmup), names))


@risk.command("fit")
@click.argument("logins", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), required=True,
              help="Weights file of the first --labels source (AUTHSVC_RISK_WEIGHTS_FILE, `replay --weights`).")
@click.option("--labels", "label_kinds", multiple=True, type=click.Choice(["outcomes", "attacks"]),
              help="Label source(s), repeatable; the first is written to --output. 'outcomes': failed vs passed "
                   "step-ups and successful logins only; 'attacks': also the attack-labelled rows. Default: both.")
@click.option("--warmup", type=click.FloatRange(0, 0.95), default=0.25, show_default=True,
              help="Leading fraction of the time span replayed but neither fitted nor evaluated.")
@click.option("--split", type=click.FloatRange(0.05, 0.95), default=0.6, show_default=True,
              help="Train on [warmup, split) of the time span; the rest is the later window (report --warmup SPLIT).")
@click.option("--hgb", is_flag=True, help="Also fit HistGradientBoosting (offline comparison only; not shippable).")
@click.option("--scores-dir", type=click.Path(file_okay=False),
              help="Write score files here: v2.csv and one per fitted model, for `risk report --warmup SPLIT`.")
@click.option("--asn-csv", multiple=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--country-mmdb", type=click.Path(exists=True, dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="FIELD=VALUE", help="As for replay: the v2 config fitted.")
def fit_cmd(logins: str, output: str, label_kinds: tuple[str, ...], warmup: float, split: float, hgb: bool,
            scores_dir: str | None, asn_csv: tuple[str, ...], country_mmdb: str | None,
            overrides: tuple[str, ...]) -> None:
    """Fit the weights of the engine's terms on an earlier time window of labelled logins (docs/RISK.md,
    "Learning from outcomes"); print log-loss on the later window against the unweighted v2 sum."""
    import tempfile

    from .evaluation.fit import FitInputError, collect, decisions, fit, save, write_scores

    if not warmup < split:
        raise click.BadParameter(f"--split ({split}) must be after --warmup ({warmup})", param_hint="--split")
    kinds = list(dict.fromkeys(label_kinds)) or ["outcomes", "attacks"]
    geo = GeoResolver(asn_csv=list(asn_csv) or None, country_mmdb=country_mmdb) if (asn_csv or country_mmdb) else None
    config = _config(overrides)
    t0 = time.perf_counter()
    if scores_dir:
        os.makedirs(scores_dir, exist_ok=True)
    if scores_dir:
        v2_path = os.path.join(scores_dir, "v2.csv")
    else:
        fd, v2_path = tempfile.mkstemp(suffix=".csv")
        os.close(fd)
    try:
        data = collect(logins, v2_path, config=config, geo=geo)
    except FitInputError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        if not scores_dir and os.path.exists(v2_path):
            os.unlink(v2_path)
    click.echo(f"replayed {len(data.index)} rows in {time.perf_counter() - t0:.0f} s", err=True)
    commit = _git_commit()
    click.echo("| model | labels | train rows (bad) | later-window rows | log-loss fitted | log-loss unweighted "
               "(v2 + intercept) | log-loss Platt(v2) |")
    click.echo("|---|---|---|---|---|---|---|")
    for i, kind in enumerate(kinds):
        for model in (["lr", "hgb"] if hgb else ["lr"]):
            try:
                res = fit(data, kind, warmup=warmup, split=split, model=model)
            except FitInputError as exc:
                raise click.ClickException(str(exc)) from None
            click.echo(f"| {res.name} | {kind} | {res.n_train} ({res.n_pos}) | {res.n_eval} | "
                       f"{res.logloss_eval:.5f} | {res.logloss_eval_unweighted:.5f} | {res.logloss_eval_platt:.5f} |")
            if model == "lr":
                click.echo("  weights: " + ", ".join(f"{k} {v:+.3f}" for k, v in res.terms.items())
                           + f"; offset {res.offset:+.3f}; intercept {res.intercept:+.3f}"
                           + (f"; set to 0 (came out negative): {', '.join(res.zeroed)}" if res.zeroed else "")
                           + (f"; kept at v2 (too few labelled rows): {', '.join(res.unfitted)}" if res.unfitted
                              else ""),
                           err=True)
                if i == 0:
                    save(res, data, output, source=logins, warmup=warmup, split=split, engine_commit=commit)
            if scores_dir:
                write_scores(os.path.join(scores_dir, f"{res.name}.csv"), data.index, res.scores,
                             decisions(res.scores, config))  # type: ignore[arg-type]
    click.echo(f"wrote {output} ({kinds[0]}); evaluate with: risk report {logins} <scores> --warmup {split}", err=True)


@risk.command("export")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), required=True)
@click.option("--stepup-window", type=click.IntRange(min=60, max=86400), default=900, show_default=True,
              help="Seconds within which a success finishes a step-up; without one it counts as failed.")
@click.option("--confirmed", type=click.IntRange(min=1), multiple=True, metavar="RECEIPT_ID",
              help="A login receipt (login_events.id) an administrator confirmed as a takeover (repeatable).")
def export_cmd(output: str, stepup_window: int, confirmed: tuple[int, ...]) -> None:
    """Write the service's login history with its outcome labels (step-ups passed/failed, "this wasn't me",
    confirmed takeovers) in the RBA schema + an Outcome column: the input of `risk fit`. Reads the database named
    by the service's settings (AUTHSVC_DATABASE_URL or the config file)."""
    from authsvc import create_app
    from authsvc.extensions import db

    from .export import export_labels

    app = create_app()
    with app.app_context():
        try:
            counts = export_labels(db.session, output, stepup_window=stepup_window, confirmed=confirmed)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--confirmed") from None
    click.echo(f"wrote {sum(counts.values())} rows to {output}: "
               + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())), err=True)


def _load_or_explain(logins: str, scores: list[str], warmup: float):
    """report.load with a one-line error for files that are not what `replay` and `simulate` write."""
    import csv

    from .evaluation.report import load

    try:
        return load(logins, scores, warmup=warmup)
    except KeyError as exc:
        raise click.ClickException(f"missing column {exc} in {logins} or a score file (the RBA schema, "
                                   f"docs/RISK.md §7; score files as `risk replay` writes them)") from None
    except StopIteration:
        raise click.ClickException(f"an empty file among {logins}, {', '.join(scores)}") from None
    except (ValueError, IndexError, csv.Error, UnicodeError) as exc:
        raise click.ClickException(f"cannot read {logins} with {', '.join(scores)}: {exc}") from None


def _git_commit() -> str | None:
    import subprocess

    try:
        out = subprocess.run(["git", "-C", os.path.dirname(os.path.abspath(__file__)), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _config(overrides: tuple[str, ...]) -> RiskConfig:
    numeric = {f.name for f in fields(RiskConfig) if f.type in ("float", "int")}
    # Tuples of floats (μ weights, the clip bounds) take comma-separated numbers: --set mu_ip=0.5,0.25,0.17,0.08
    tuples = {f.name for f in fields(RiskConfig) if str(f.type).startswith("tuple[float")}
    values: dict[str, object] = {}
    for item in overrides:
        name, sep, raw = item.partition("=")
        if not sep or name not in numeric | tuples:
            raise click.BadParameter(f"{item!r}: expected FIELD=NUMBER with FIELD one of {sorted(numeric | tuples)}")
        try:
            if name in tuples:
                values[name] = tuple(float(x) for x in raw.split(","))
            else:
                values[name] = int(raw) if raw.lstrip("-").isdigit() else float(raw)
        except ValueError as exc:
            raise click.BadParameter(f"{item!r}: {raw!r} is not a number") from exc
    try:
        return RiskConfig(**values)  # type: ignore[arg-type]
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


def main() -> None:  # pragma: no cover - `python -m authsvc.risk.cli`
    risk(prog_name=os.path.basename(sys.argv[0]) or "risk")


if __name__ == "__main__":  # pragma: no cover
    main()
