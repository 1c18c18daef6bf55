"""``authsvc signals worker`` (drain the outbox until SIGTERM/SIGINT; ``--once``: one pass) and ``signals status``."""

from __future__ import annotations

import signal
import threading

import click
from flask import current_app
from flask.cli import with_appcontext


@click.group("signals", help="Shared Signals / Back-Channel Logout delivery (the SQL outbox and its worker).")
def signals_group():
    pass


@signals_group.command("worker", help="Deliver outbox rows (push SETs, logout tokens) until stopped.")
@click.option("--once", is_flag=True, help="One pass, then exit (cron, tests).")
@with_appcontext
def worker(once):
    from authsvc.signals import signals

    sig = signals(current_app._get_current_object())
    if once:
        r = sig.worker.run_once()
        click.echo(f"claimed {r.claimed}, delivered {r.delivered}, retried {r.retried}, failed {r.failed}")
        return
    stop = threading.Event()

    def on_signal(signum, _frame):
        stop.set()
        sig.worker.wakeup.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    click.echo(f"signals worker {sig.worker.name}: kinds {', '.join(sorted(sig.worker.handlers)) or '(none)'}",
               err=True)
    sig.worker.run_forever(stop, interval=sig.settings.signals_poll_interval)


@signals_group.command("status", help="Backlog per kind and given-up deliveries.")
@with_appcontext
def status():
    from authsvc.extensions import db
    from authsvc.signals.outbox import backlog, failed_count

    counts = backlog(db.session)
    for kind in sorted(counts):
        click.echo(f"{kind}: {counts[kind]} pending")
    click.echo(f"failed: {failed_count(db.session)}")
