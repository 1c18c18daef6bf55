"""The ``authsvc`` command: Flask's CLI group plus our commands (db, admin, audit, serve, breach, risk)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from contextlib import contextmanager

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext


def _alembic_config(connection=None):
    from alembic.config import Config

    from authsvc.resources import resource_dir

    cfg = Config()
    cfg.set_main_option("script_location", resource_dir("migrations"))  # the checkout's, or the installed copy
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def upgrade_database(revision: str = "heads") -> None:
    """Apply migrations inside the current app context (used by the CLI, ./run and the tests)."""
    from alembic import command

    from authsvc.extensions import db

    with _migration_connection(db.engine) as conn:
        command.upgrade(_alembic_config(conn), revision)


@contextmanager
def _migration_connection(engine):
    """A connection in a transaction for Alembic. On SQLite, foreign-key enforcement is off for the run: changing a
    table means rebuilding it (Alembic batch mode), and dropping a parent table with enforcement on would
    cascade-delete its children. SQLite only switches it outside a transaction; the keys are checked before the
    commit, and enforcement is back on before the connection returns to the pool."""
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            conn.commit()
        try:
            with conn.begin():
                yield conn
                if sqlite and conn.exec_driver_sql("PRAGMA foreign_key_check").first() is not None:
                    raise RuntimeError("the migration left rows that break a foreign key; nothing was changed")
        finally:
            if sqlite:
                conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                conn.commit()


# --- db -------------------------------------------------------------------------------------------------------------
@click.group("db", help="Database migrations (Alembic).")
def db_group():
    pass


@db_group.command("upgrade")
@click.argument("revision", default="heads")
@with_appcontext
def db_upgrade(revision):
    upgrade_database(revision)
    click.echo(f"database at {revision}")


@db_group.command("downgrade")
@click.argument("revision")
@with_appcontext
def db_downgrade(revision):
    from alembic import command

    from authsvc.extensions import db

    with _migration_connection(db.engine) as conn:
        command.downgrade(_alembic_config(conn), revision)
    click.echo(f"database at {revision}")


@db_group.command("revision", help="Create a migration from model changes (developers).")
@click.option("-m", "--message", required=True)
@with_appcontext
def db_revision(message):
    from alembic import command

    from authsvc.extensions import db

    with db.engine.begin() as conn:
        command.revision(_alembic_config(conn), message=message, autogenerate=True)


# --- admin ----------------------------------------------------------------------------------------------------------
@click.group("admin", help="Administrators.")
def admin_group():
    pass


@admin_group.command("create")
@click.option("--email", required=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input (never argv).")
@with_appcontext
def admin_create(email, password_stdin):
    from authsvc.accounts.login import RequestContext
    from authsvc.accounts.service import InvalidInput, PolicyError
    from authsvc.services import services

    password = sys.stdin.readline().rstrip("\n") if password_stdin else \
        click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        user = services().accounts.create_admin(email, password, RequestContext(ip=None, user_agent="cli"))
    except (PolicyError, InvalidInput) as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"administrator {user.email} (id {user.id}) ready")


@admin_group.command("setup-link", help="Print a one-time link for creating the first administrator.")
@with_appcontext
def admin_setup_link():
    from authsvc.services import services

    link = services().accounts.setup_link()
    click.echo(link or "an administrator exists already; no setup link is needed")


def _set_status(email: str, status: str) -> None:
    from sqlalchemy import select

    from authsvc.accounts.login import normalize_email
    from authsvc.extensions import db
    from authsvc.models import User
    from authsvc.services import services

    user = db.session.execute(select(User).where(User.email == normalize_email(email))).scalar_one_or_none()
    if user is None:
        raise click.ClickException(f"no user {email}")
    user.status = status
    db.session.commit()
    details = None
    if status == "disabled":
        details = {"sessions_ended": services().sessions.revoke_all(user, "admin_disabled")}
    services().audit.record("admin:user:disable" if status == "disabled" else "admin:user:enable", "success",
                            subject_id=user.id, user_agent="cli", details=details)
    click.echo(f"{user.email} (id {user.id}) is {status}")


@admin_group.command("disable", help="Disable an account and end its sessions (also another administrator's, "
                                      "which the panel refuses).")
@click.option("--email", required=True)
@with_appcontext
def admin_disable(email):
    _set_status(email, "disabled")


@admin_group.command("enable", help="Enable a disabled account.")
@click.option("--email", required=True)
@with_appcontext
def admin_enable(email):
    _set_status(email, "active")


# --- audit ----------------------------------------------------------------------------------------------------------
@click.group("audit", help="Security event log.")
def audit_group():
    pass


@audit_group.command("verify", help="Check the hash chain; exit 1 if any row was edited or deleted.")
@with_appcontext
def audit_verify():
    from authsvc.services import services

    report = services().audit.verify()
    if report.ok:
        click.echo(f"audit log intact: {report.checked} events verified")
        return
    click.echo(f"audit log TAMPERED at event {report.first_bad_id}: {report.problem} "
               f"({report.checked} events verified before it)", err=True)
    sys.exit(1)


# --- retention ------------------------------------------------------------------------------------------------------
@click.command("retention", help="Prune receipts, ended sessions, expired tokens and old audit events under the "
                                 "retention_* settings, in bounded batches (docs/ARCHITECTURE.md, Retention).")
@click.option("--dry-run", is_flag=True, help="Only count what a run would delete.")
@click.option("--loop", is_flag=True, help="Run every AUTHSVC_RETENTION_INTERVAL seconds until stopped "
                                           "(what `authsvc serve` starts).")
@click.option("--first-delay", default=60.0, show_default=True, type=float, help="With --loop: seconds before "
                                                                                 "the first run.")
@with_appcontext
def retention(dry_run, loop, first_delay):
    import time

    from authsvc.audit import ChainBroken
    from authsvc.extensions import db
    from authsvc.retention import for_app

    app = current_app._get_current_object()
    service = for_app(app)
    if dry_run:
        for name, n in service.pending().items():
            click.echo(f"{name}: {n} to prune")
        return
    interval = app.config["AUTHSVC"].retention_interval
    if loop and interval <= 0:
        raise click.UsageError("AUTHSVC_RETENTION_INTERVAL is 0 (off)")
    if loop:
        time.sleep(first_delay)
    while True:
        try:
            report = service.run()
        except ChainBroken as exc:
            click.echo(f"retention: NOT pruning the audit log, its chain does not verify: {exc}", err=True)
            if not loop:
                sys.exit(1)
        except Exception as exc:  # noqa: BLE001 - a store down: say so, retry at the next interval (never fail open)
            db.session.rollback()
            click.echo(f"retention: failed ({type(exc).__name__}: {exc})", err=True)
            if not loop:
                sys.exit(1)
        else:
            if report.skipped:
                click.echo("retention: another run holds the lock; skipped")
            else:
                counts = ", ".join(f"{k} {v}" for k, v in report.counts.items())
                click.echo(f"retention: pruned {counts}; audit chain starts at event {report.audit_first_id}")
        db.session.remove()
        if not loop:
            return
        time.sleep(interval)


# --- serve ----------------------------------------------------------------------------------------------------------
@click.command("serve", help="Migrate, start the embedded Redis if needed, print the setup link, run the HTTP server.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--workers", default=None, type=int, help="default: 2 × CPUs + 1")
@click.option("--server", "server_kind", type=click.Choice(["gunicorn", "granian"]), default="gunicorn",
              show_default=True, envvar="AUTHSVC_SERVER",
              help="gunicorn (default): sync workers, behind a buffering proxy; granian (pip install "
                   "'authsvc[granian]'): a Rust HTTP server, 2-3.7x the throughput, not held up by slow clients, but "
                   "refuses connections while all its workers restart (docs/OPERATIONS.md)")
@with_appcontext
def serve(host, port, workers, server_kind):
    from authsvc import embedded_redis
    from authsvc.services import services

    app = current_app._get_current_object()
    settings = app.config["AUTHSVC"]
    env = dict(os.environ)
    holds_embedded_redis = settings.redis_url is None and settings.redis_mode == "standalone"
    if holds_embedded_redis:
        # One server for every worker (see embedded_redis); workers inherit its URL through the environment.
        # (Sentinel mode has no URL either — its Sentinels are the address — and must not get an embedded server.)
        # Held until this process exits, then stopped unless another `authsvc serve` on the folder still holds it.
        signal.signal(signal.SIGTERM, _exit_on_sigterm)  # so a SIGTERM while migrating still stops it (atexit)
        env["AUTHSVC_REDIS_URL"] = embedded_redis.hold_for_server(app.instance_path)
        click.echo(f"embedded redis: {env['AUTHSVC_REDIS_URL']} (stopped when this server exits)")
    env["AUTHSVC_INSTANCE_PATH"] = app.instance_path
    if not env.get("PROMETHEUS_MULTIPROC_DIR"):
        # GET /metrics adds up every worker's values from here (authsvc.metrics); emptied at each start, as
        # prometheus-client requires, so counters restart with the service like any process's would.
        env["PROMETHEUS_MULTIPROC_DIR"] = os.path.join(app.instance_path, "prometheus")
    shutil.rmtree(env["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
    os.makedirs(env["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)
    default_base = "http://localhost:5000"
    if settings.base_url == default_base and port != 5000 and not os.environ.get("AUTHSVC_BASE_URL"):
        # Links in e-mails (and the setup link below) must point at the port we actually serve.
        env["AUTHSVC_BASE_URL"] = f"http://localhost:{port}"
    upgrade_database()
    _measure_hashing_capacity(services(), settings)
    link = services().accounts.setup_link()
    if link and env.get("AUTHSVC_BASE_URL", settings.base_url) != settings.base_url:
        link = env["AUTHSVC_BASE_URL"] + link[len(settings.base_url):]
    if link:
        click.secho(f"\nNo administrator yet. Create one (link works once):\n  {link}\n", fg="yellow")
    _start_signals_worker(app, env)
    # More sync workers than cores: a worker hashing a password (100+ ms of CPU) must not hold up the cheap
    # requests — session checks, refusals of throttled attempts — that other workers can answer meanwhile.
    workers = workers or 2 * (os.cpu_count() or 1) + 1
    _start_retention(settings, env)
    click.echo(f"serving on http://{'localhost' if host in ('127.0.0.1', 'localhost') else host}:{port}")
    run = _run_server if holds_embedded_redis else os.execvpe  # nothing to clean up: become the server
    if server_kind == "granian":
        import importlib.util

        if importlib.util.find_spec("granian") is None:
            raise click.UsageError("granian is not installed: pip install 'authsvc[granian]'")
        # One blocking thread per worker: the same one-request-at-a-time workers as gunicorn's sync model (a worker
        # hashing a password holds only its own request), with Rust doing the HTTP parsing and keep-alive.
        run(sys.executable, [sys.executable, "-m", "granian", "--interface", "wsgi", "--host", host, "--port",
                             str(port), "--workers", str(workers), "--blocking-threads", "1",
                             "--respawn-failed-workers", "--access-log",
                             # granian cannot rewrite what it logs: leave the path (reset/verify/... links
                             # carry single-use tokens) and the query out of its access log altogether
                             "--access-log-fmt", GRANIAN_ACCESS_FMT, "authsvc.wsgi:app"], env)
    run(sys.executable, [sys.executable, "-m", "gunicorn", "--bind", f"{host}:{port}", "--workers",
                         # authsvc's own request deadline (web/deadline.py) fires first and names the request
                         str(workers), "--timeout", str(settings.request_timeout + 5), "--access-logfile", "-",
                         # no single-use tokens (reset/verify/... links) or credentials in the access log
                         "--logger-class", "authsvc.web.accesslog.RedactingLogger", "authsvc.wsgi:app"], env)


def _start_retention(settings, env: dict) -> None:
    """The retention schedule: one `authsvc retention --loop` process beside the server (first run after a minute,
    then every ``retention_interval`` seconds). It dies with the server (PR_SET_PDEATHSIG, also across the exec into
    gunicorn, which keeps this pid); several servers on several hosts share the database safely: a run takes the
    Redis lock ``retention:lock`` and the others skip. ``retention_interval = 0``: no process (run the command from
    cron instead)."""
    if settings.retention_interval <= 0:
        return
    subprocess.Popen([sys.executable, "-c", "from authsvc.cli import main; main()", "retention", "--loop"],
                     env=env, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent_hook())
    click.echo(f"retention: every {settings.retention_interval} s (a separate process; AUTHSVC_RETENTION_INTERVAL)")
def _start_signals_worker(app, env: dict) -> None:
    """The outbox worker (authsvc.signals) as a sibling process of the HTTP server, unless the operator runs it
    elsewhere (signals_worker_in_serve = false). It gets SIGTERM when this process (or the server it becomes) ends."""
    from authsvc.signals import signals

    if not signals(app).settings.signals_worker_in_serve:
        return
    subprocess.Popen([sys.executable, "-c", "from authsvc.cli import main; main()", "signals", "worker"], env=env,
                     preexec_fn=_die_with_parent_hook())
    click.echo("signals worker started (outbox delivery)")


GRANIAN_ACCESS_FMT = '[%(time)s] %(addr)s - "%(method)s %(scheme)s %(protocol)s" %(status)d %(dt_ms).3f'


def _measure_hashing_capacity(svc, settings) -> None:
    """Measure this host's warm argon2 speed once, before the workers fork, and store it in Redis for all of them
    (authsvc/defense/budget.py): no worker measures while its siblings boot, and the first login does not wait."""
    budget = getattr(svc.throttle, "budget", None)
    if budget is None or settings.throttle_unfamiliar_per_second > 0:
        return
    try:
        per_hash = budget.seconds_per_hash(wait=True)
    except Exception as exc:  # noqa: BLE001 - Redis away: the workers measure (or refuse with 503) themselves
        click.echo(f"hashing capacity not measured now ({type(exc).__name__}); the first worker will measure it")
        return
    if per_hash:
        click.echo(f"hashing capacity: {budget.cpus / per_hash:.1f} hashes/s ({budget.cpus} CPUs, "
                   f"{per_hash * 1000:.0f} ms of CPU per warm hash); unfamiliar-attempt budget "
                   f"{settings.throttle_unfamiliar_share * budget.cpus / per_hash:.1f}/s from this host")


# Signals an operator sends to a gunicorn master (stop, quick stop, reload, reopen logs, upgrade, more/fewer workers).
_FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2,
                      signal.SIGTTIN, signal.SIGTTOU)


def _exit_on_sigterm(signum, _frame):
    sys.exit(128 + signum)


def _run_server(executable: str, argv: list[str], env: dict) -> None:
    """Run the HTTP server as a child instead of becoming it, so that this process sees it end and its exit handlers
    run (they stop the embedded Redis: embedded_redis.hold_for_server).

    The child gets a process group of its own and every signal through us: Ctrl-C reaches it once (the terminal
    signals only our group), and ``kill``/systemd/``./run`` callers keep addressing this pid, as before. If this
    process is killed outright (SIGKILL), the kernel sends the server SIGTERM (Linux PR_SET_PDEATHSIG) and only the
    embedded Redis is left, as it always was; the next ``authsvc serve`` reuses it."""
    from authsvc.extensions import db

    db.engine.dispose()  # this process only waits from here on
    pending: list[int] = []
    child: list[subprocess.Popen] = []

    def forward(signum, _frame):
        if child:
            if child[0].poll() is None:
                child[0].send_signal(signum)
        else:
            pending.append(signum)  # arrived while the child was being started

    for sig in _FORWARDED_SIGNALS:
        signal.signal(sig, forward)
    child.append(subprocess.Popen(argv, executable=executable, env=env, process_group=0,
                                  preexec_fn=_die_with_parent_hook()))
    for signum in pending:
        child[0].send_signal(signum)
    code = child[0].wait()
    sys.exit(code if code >= 0 else 128 - code)


def _die_with_parent_hook():
    """Linux: a function for the child (run between fork and exec) asking for SIGTERM when its parent dies."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def hook():
        prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before the request took effect
            os._exit(1)

    return hook


def init_app(app: Flask) -> None:
    for group in (db_group, admin_group, audit_group, serve, retention):
        app.cli.add_command(group)


def _create_app():
    from authsvc import create_app

    return create_app()


class AuthsvcGroup(FlaskGroup):
    pass


def _add_standalone(group: click.Group) -> None:
    """Commands that need no app (breach corpus, risk evaluation) hang off the root group directly."""
    for module, name in (("authsvc.breach.cli", "breach"), ("authsvc.risk.cli", "risk")):
        try:
            mod = __import__(module, fromlist=[name])
        except ImportError:
            continue
        group.add_command(getattr(mod, name))


main = AuthsvcGroup(create_app=_create_app, add_default_commands=False, add_version_option=False,
                    help="authsvc — account-takeover defense and authentication service.")
_add_standalone(main)
