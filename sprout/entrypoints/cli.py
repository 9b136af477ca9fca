"""The `sprout` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import uuid
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from sprout.core.experiments import ExperimentFileError
from sprout.core.llm import DEMO_BANNER
from sprout.core.logs import configure_logging, get_logger
from sprout.core.messages import BLOCK_SEPARATOR, Incoming
from sprout.core.settings import Settings

if TYPE_CHECKING:
    from sprout.report import Figure

log = get_logger(__name__)

# Third-party loggers that would otherwise write phone numbers, bodies or URLs with ids at INFO.
_QUIET = (
    "twilio",  # a request dump with headers on every send
    "httpx",
    "httpx2",
    "httpcore",
    "openai",
    "hypercorn.access",
    "aiosqlite",
    "telegram",
    "telegram.ext",
    "alembic",  # a few lines on every start about the migration context
)


def _secrets(settings: Settings) -> list[str]:
    """What no log line may show, whichever library writes it."""
    found = [
        secret.get_secret_value()
        for secret in (
            settings.twilio_auth_token,
            settings.telegram_bot_token,
            settings.telegram_webhook_secret,
            settings.openai_api_key,
            settings.safeguarding_webhook_secret,
        )
        if secret is not None
    ]
    for url in (settings.database_url, settings.redis_url):
        password = urlsplit(url).password if url else None
        if password:
            found.append(password)
    return found


def _setup_logging(settings: Settings, path: Path | None = None) -> None:
    configure_logging(
        settings.log_level,
        settings.pseudonym_key,
        secrets=_secrets(settings),
        path=path,
    )
    for name in _QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)


def _log_crash(
    kind: type[BaseException], error: BaseException, traceback: TracebackType | None
) -> None:
    """A server's crash as one more JSON line, traceback inside, like every line before it;
    in a terminal, where a person reads it, as the usual plain traceback."""
    # KeyboardInterrupt: Ctrl-C before the signal handlers are set, no crash.
    if sys.stderr.isatty() or issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, error, traceback)
        return
    log.critical("crashed", exc_info=(kind, error, traceback))


def startup_summary(settings: Settings, address: str) -> str:
    """What a person starting the server needs to know, in plain words (not the JSON log)."""
    lines = [f"Sprout is listening on {address}  (health: {address}/healthz)"]
    if settings.demo_mode:
        lines += ["", "*" * 78, f"* {DEMO_BANNER}", "*" * 78, ""]
    else:
        lines.append(f"  model: {settings.model} at {settings.openai_base_url or 'OpenAI'}")
    if settings.whatsapp_enabled:
        lines.append("  WhatsApp: webhook POST /whatsapp (status callbacks: /whatsapp/status)")
        if not settings.public_url:
            lines.append("  note: SPROUT_PUBLIC_URL is not set; signatures are checked against")
            lines.append("        the request URL and X-Forwarded-* headers")
    else:
        lines.append("  WhatsApp: off (set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN; see README)")
    if settings.telegram_bot_token is None:
        lines.append("  Telegram: off (set TELEGRAM_BOT_TOKEN; see README)")
    elif settings.telegram_webhook_secret and settings.public_url:
        lines.append("  Telegram: webhook POST /telegram")
    else:
        lines.append("  Telegram: polling")
    lines.append("  Try it in a terminal, no phone needed: .venv/bin/sprout chat")
    return "\n".join(lines)


async def _serve(settings: Settings, host: str, port: int) -> None:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    from sprout.bootstrap import running
    from sprout.entrypoints.server import create_app

    config = Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None  # access lines would carry ids in query strings; we log our own events
    # Given a logger, hypercorn adds no handler of its own: its lines ("Running on …") reach
    # the root handler and come out as JSON like the rest.
    config.errorlog = logging.getLogger("hypercorn.error")
    # Requests in flight (quick: they record and queue) share the one grace with the answers
    # in flight, which get what is left of it once Hypercorn has returned.
    config.graceful_timeout = settings.shutdown_grace_s
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with running(settings) as runtime:

        async def stopped() -> None:
            await stop.wait()
            log.info("stopping", grace_s=settings.shutdown_grace_s)
            runtime.stopping.begin()

        shown = "localhost" if host in {"0.0.0.0", "::"} else host  # noqa: S104
        address = f"http://{shown}:{port}"
        # stderr is the log stream: where a platform or a pipe collects it, every line must be
        # JSON, so the address is an event. The summary in plain words is for a person at a
        # terminal, the only place it is printed: once, among the start-up lines, before
        # hypercorn's "Running on" and any message.
        log.info("serving", url=address, health=f"{address}/healthz")
        if sys.stderr.isatty():
            print(startup_summary(settings, address), file=sys.stderr, flush=True)
        await serve(create_app(runtime), config, shutdown_trigger=stopped)


class _TerminalSender:
    """The terminal as a channel: each chunk printed as the user's phone would show it."""

    def __init__(self) -> None:
        self.count = 0

    async def send(self, incoming: Incoming, text: str, joint: str = BLOCK_SEPARATOR) -> str:
        self.count += 1
        print(f"\n--- sprout [{self.count}] ---\n{text}", flush=True)
        return str(self.count)


async def _chat(settings: Settings, channel: str, log_file: Path | None) -> None:
    """The full path a message takes (memory, profile, chunking, hold message), minus a phone.
    The screen shows only the conversation; the log goes to `log_file` (None: to stderr)."""
    from sprout.bootstrap import open_core
    from sprout.core.delivery import Channel
    from sprout.core.specs import TELEGRAM, WEB, WHATSAPP

    spec = {"whatsapp": WHATSAPP, "telegram": TELEGRAM, "web": WEB}[channel]
    sender = _TerminalSender()
    async with open_core(settings) as core:
        delivery = core.delivery({"cli": Channel(spec, sender)})
        if settings.demo_mode:
            print(f"*** {DEMO_BANNER}", file=sys.stderr)
        print(f"Sprout ({core.model.name}), showing answers as {channel} would. Ctrl-D to quit.")
        if log_file is not None:
            print(f"(log: {log_file}; --verbose shows it here)", file=sys.stderr)
        while True:
            try:
                text = await asyncio.to_thread(input, "\nyou> ")
            except EOFError:
                return
            sender.count = 0
            incoming = Incoming(
                channel="cli", user_id="cli:local", text=text, message_id=uuid.uuid4().hex
            )
            inbound_id = await core.store.record_inbound(incoming)
            if inbound_id is not None:
                await delivery.run(inbound_id)


async def _migrate(settings: Settings) -> None:
    from sprout.bootstrap import open_store

    async with open_store(settings):
        pass


def _web(host: str, port: int) -> None:
    """Replace this process with the Streamlit server for the page (so signals reach it)."""
    page = Path(__file__).resolve().parent / "web_page.py"
    args = ["streamlit", "run", str(page), "--server.port", str(port), "--server.address", host]
    args += ["--server.headless", "true", "--browser.gatherUsageStats", "false"]
    os.execv(sys.executable, [sys.executable, "-m", *args])  # noqa: S606 - fixed argv, no shell


async def _read_rows(settings: Settings, table: str) -> list[dict[str, object]]:
    from sprout.bootstrap import open_store
    from sprout.core.experiments import load_experiments
    from sprout.export import export_programme, export_safety, export_turns

    path = settings.experiments_file
    experiments = load_experiments(path, settings.prompts_dir) if path is not None else ()
    async with open_store(settings) as store:
        if table == "safety":
            return await export_safety(store)
        if table == "programme":
            return await export_programme(store)
        return await export_turns(store, experiments)


def _export(settings: Settings, form: str, output: str | None, table: str = "turns") -> None:
    from sprout.export import FIELDS, PROGRAMME_FIELDS, SAFETY_FIELDS, to_csv, to_json

    rows = asyncio.run(_read_rows(settings, table))
    fields = {"turns": FIELDS, "safety": SAFETY_FIELDS, "programme": PROGRAMME_FIELDS}[table]
    text = to_csv(rows, fields) if form == "csv" else to_json(rows)
    if output:
        with open(output, "w", encoding="utf-8", newline="") as file:
            file.write(text)
        what = {"turns": "turns", "safety": "safety events", "programme": "programme rows"}
        print(f"{len(rows)} {what[table]} written to {output}", file=sys.stderr)
    else:
        sys.stdout.write(text)


async def _read_report(settings: Settings, name: str | None) -> list[Figure]:
    from sprout.bootstrap import open_store
    from sprout.report import experiments_to_report, report

    experiments = experiments_to_report(settings, name)
    async with open_store(settings) as store:
        return await report(store, experiments)


def _report(settings: Settings, name: str | None, form: str) -> None:
    from sprout.report import ReportError
    from sprout.report.output import to_csv, to_json, to_table

    try:
        figures = asyncio.run(_read_report(settings, name))
    except ReportError as reason:
        print(reason, file=sys.stderr)
        sys.exit(1)
    render = {"table": to_table, "csv": to_csv, "json": to_json}[form]
    sys.stdout.write(render(figures))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="sprout", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the webhook server and the job runner")
    serve.add_argument("--host", default="0.0.0.0")  # noqa: S104 - a server must listen publicly
    serve.add_argument("--port", type=int, default=None, help="default: $PORT or 5000")
    worker = commands.add_parser("worker", help="answer jobs queued in Redis (needs REDIS_URL)")
    worker.add_argument(
        "--concurrency", type=int, default=500, help="conversations answered at once"
    )
    worker.add_argument(
        "--status-port", type=int, default=None, help="serve /metrics and /healthz on this port"
    )
    commands.add_parser("migrate", help="create or upgrade the database schema, then exit")
    chat = commands.add_parser("chat", help="talk to the assistant in this terminal")
    chat.add_argument(
        "--as",
        dest="channel",
        choices=["whatsapp", "telegram", "web"],
        default="whatsapp",
        help="render and cut answers as this channel does",
    )
    chat.add_argument(
        "--verbose",
        action="store_true",
        help="show the log in the terminal (default: in <data dir>/logs/chat.log)",
    )
    web = commands.add_parser("web", help="run the research web page (Streamlit)")
    web.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to let other machines in")
    web.add_argument("--port", type=int, default=8501)
    export = commands.add_parser("export", help="conversations with per-message timings")
    export.add_argument("--format", choices=["csv", "json"], default="csv")
    export.add_argument("--output", "-o", help="file to write (default: standard output)")
    which = export.add_mutually_exclusive_group()
    which.add_argument(
        "--safety",
        action="store_const",
        const="safety",
        dest="table",
        help="the safety events instead (for operators: no message texts)",
    )
    which.add_argument(
        "--programme",
        action="store_const",
        const="programme",
        dest="table",
        help="regular ideas, check-ins and opt-outs: delivered, read, tapped, replied",
    )
    report = commands.add_parser("report", help="outcomes per arm of each experiment")
    report.add_argument("--experiment", help="only this experiment (default: every one)")
    report.add_argument("--format", choices=["table", "csv", "json"], default="table")
    args = parser.parse_args(argv)

    settings = Settings()
    # In `chat` the terminal is the conversation: log lines between the answers would bury it.
    chat_log = None
    if args.command == "chat" and not args.verbose:
        chat_log = settings.data_dir / "logs" / "chat.log"
    _setup_logging(settings, chat_log)
    if args.command in {"serve", "worker"}:
        sys.excepthook = _log_crash
    try:
        _run(args, settings, chat_log)
    except ExperimentFileError as error:
        # Servers log JSON lines for machines to read; everything else talks to a person.
        _cannot_start(error, plain=args.command not in {"serve", "worker"})


def _run(args: argparse.Namespace, settings: Settings, chat_log: Path | None) -> None:
    if args.command == "serve":
        asyncio.run(_serve(settings, args.host, args.port or settings.port))
    elif args.command == "worker":
        from sprout.entrypoints.worker import run_worker

        asyncio.run(run_worker(settings, args.concurrency, args.status_port))
    elif args.command == "migrate":
        asyncio.run(_migrate(settings))
    elif args.command == "chat":
        asyncio.run(_chat(settings, args.channel, chat_log))
    elif args.command == "web":
        _web(args.host, args.port)
    elif args.command == "export":
        _export(settings, args.format, args.output, args.table or "turns")
    elif args.command == "report":
        _report(settings, args.experiment, args.format)


def _cannot_start(error: ExperimentFileError, plain: bool) -> None:
    """A broken experiments file: said plainly to a person, as one JSON line to a log."""
    if plain or sys.stderr.isatty():
        print(f"sprout cannot start: {error}", file=sys.stderr)
    else:
        log.critical("cannot_start", problem=str(error))
    sys.exit(1)


if __name__ == "__main__":
    main()
