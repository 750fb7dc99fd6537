"""Tasks recover (one pass, or ``--watch``) and alerts.test.

Exit codes (recover): 0 every service wanted running is healthy at the end of the pass (nothing
to do, or recovered), or another opskit operation held the stack lock and this run acted on
nothing · 1 something is still unhealthy (a restart failed, recovery gave up, a dependency is
still failing, or the masking check fails) · 2 bad stack file or usage · 130 interrupted.
``--watch`` exits 0 after SIGTERM/SIGINT once its current pass has finished.

Exit codes (alerts.test): 0 every notifier took the test alert · 1 one did not · 2 none is
configured.
"""

from __future__ import annotations

import sys

from invoke import Exit, task

from opskit.results import result_json
from opskit.tasks import common

_HELP = {
    "stack": common.COMMON_HELP["stack"],
    "runtime": common.COMMON_HELP["runtime"],
    "watch": "run pass after pass in the foreground (for systemd); SIGTERM finishes the pass",
    "interval": "--watch: seconds between full health passes (default x-opskit.recover.interval)",
    "dry_run": "observe and say what would be done; restart nothing, alert nobody, save nothing",
    "reset": "forget SERVICE's restart budget and give-up first (repeatable)",
    "wait": "wait up to this many seconds for the stack lock instead of doing nothing",
    "json": "print each pass as JSON",
}


@task(
    klass=common.OpskitTask,
    iterable=["reset"],
    help=_HELP,
)
@common.handles_errors
def recover(
    c,
    watch=False,
    interval=None,
    dry_run=False,
    reset=None,
    wait=None,
    json=False,
    stack=None,
    runtime=None,
):
    """Restart what is down or failing, in dependency order, within a restart budget; alert once."""
    from opskit.errors import LockBusyError
    from opskit.ops import recover as recovery
    from opskit.redact import Redactor

    resets = common.services_option(reset, flag="reset") or []
    seconds = common.seconds_option("interval", interval)
    lock_wait = common.seconds_option("wait", wait) or 0.0
    loaded = common.load(c, stack, runtime)
    redact = Redactor(loaded.secrets())
    loaded.resolve(resets)  # an unknown --reset name is a usage error before anything runs

    def show(result: recovery.RecoverResult) -> None:
        if json:
            print(result_json(result, redact, indent=None), flush=True)
        elif not (watch and result.quiet):
            _print(result, redact)

    events = _cleaning_lines(redact)
    if watch:
        load = lambda: common.load(c, stack, runtime)  # noqa: E731
        _watch(loaded, load, seconds, dry_run, resets, show, events)
        return
    try:
        with common.finishing_on_signals() as stop:
            result = recovery.recover(
                loaded, dry_run=dry_run, reset=resets, wait=lock_wait, on_event=events, stop=stop
            )
    except LockBusyError as exc:
        result = recovery.RecoverResult([], busy=str(exc))
    show(result)
    if result.exit_code:
        raise Exit(code=result.exit_code)


def _cleaning_lines(redact):
    """What a recovery cleared before restarting (an orphaned nginx worker killed), said on
    stderr as ``inv start`` says it; the rest of a pass is its result rows."""
    from opskit.console import log_line
    from opskit.vocabulary import Phase

    def on_event(event) -> None:
        if event.phase is Phase.CLEANING:
            log_line("INFO", f"{event.service}: cleaning — {redact(event.detail)}")

    return on_event


def _watch(loaded, load, interval, dry_run, resets, show, events) -> None:
    import signal

    from opskit.console import log_line
    from opskit.ops import recover as recovery
    from opskit.recovery.liveness import ExitWatch

    with ExitWatch() as exits:

        def finishing(signum: signal.Signals) -> None:
            exits.wake()
            log_line("INFO", f"recover --watch: {signum.name}: finishing the pass")

        with common.finishing_on_signals(finishing) as stop:
            every = interval or loaded.config.recover.interval
            log_line("INFO", f"recover --watch: {loaded.name}, a full pass every {every:g}s")
            if resets:
                recovery.recover(loaded, dry_run=dry_run, reset=resets, wait=30.0, on_event=events)
            recovery.watch(
                load,
                stop=stop,
                exits=exits,
                on_pass=show,
                interval=interval,
                dry_run=dry_run,
                on_event=events,
            )
    log_line("INFO", "recover --watch: stopped")


def _print(result, redact) -> None:
    from opskit.console import timestamp
    from opskit.vocabulary import RecoverAction

    stamp = timestamp()
    if result.busy:
        print(f"{stamp} recover: {redact(result.busy)}; this run acted on nothing", flush=True)
        return
    if result.blocked:
        print(f"{stamp} recover: {redact(result.blocked)}", flush=True)
        return
    prefix = "recover (dry run)" if result.dry_run else "recover"
    if result.problem:
        print(f"{stamp} {prefix}: {redact(result.problem)}", flush=True)
    for row in result.rows:
        if row.action is RecoverAction.NOTHING and not row.detail:
            continue
        line = f"{row.service}: {row.verdict.value} — {row.action.value}"
        print(f"{stamp} {prefix}: {line}" + (f": {redact(row.detail)}" if row.detail else ""))
        if row.log_tail:
            print(f"{stamp} {prefix}: last {len(row.log_tail)} log lines of {row.service}:")
            for tail_line in redact.lines(row.log_tail):
                print(f"    {tail_line}")
    for delivery in result.deliveries:
        outcome = "sent" if delivery.ok else f"NOT sent ({redact(delivery.detail)})"
        print(f"{stamp} {prefix}: alert {delivery.kind.value} {delivery.subject} → {outcome}")
    healthy = sum(1 for row in result.rows if row.action.resolved)
    verdict = "ok" if result.ok else "NOT ok"
    tail = f"{healthy} of {len(result.rows)} resolved in {result.seconds:.2f}s"
    print(f"{stamp} {prefix}: {verdict}: {tail}", flush=True)


@task(klass=common.OpskitTask, help={k: _HELP[k] for k in ("stack", "runtime")})
@common.handles_errors
def test(c, stack=None, runtime=None):
    """Send a test alert through every configured notifier and say how each did."""
    from opskit.alerts.dispatch import Dispatcher
    from opskit.redact import Redactor

    loaded = common.load(c, stack, runtime)
    redact = Redactor(loaded.secrets())
    dispatcher = Dispatcher(loaded.name, loaded.config.alerts, loaded.state_dir, redact)
    if not dispatcher.notifiers:
        print("opskit: no notifier configured (x-opskit.alerts.notify)", file=sys.stderr)
        raise Exit(code=2)
    failed = 0
    for delivery in dispatcher.test():
        if delivery.ok:
            print(f"{delivery.notifier}: sent")
        else:
            failed += 1
            print(f"{delivery.notifier}: FAILED — {redact(delivery.detail)}")
    if failed:
        raise Exit(code=1)


COLLECTIONS = [
    common.collection("recover", recover),
    common.collection("alerts", test),
]
