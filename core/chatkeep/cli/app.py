"""The ``chatkeep`` command (click + rich). See docs/cli.md and the README."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import IO, Any, NoReturn

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text

from chatkeep import (
    UNSET,
    ChatkeepError,
    ConfigurationError,
    Message,
    SessionInfo,
    StoreConfig,
    __version__,
    encode_record,
)
from chatkeep.redis import PendingWrites, pending_writes, plural

from .admin import Admin, LineError, RekeyResult, replay_journal
from .doctor import run_checks

__all__ = [
    "EXIT_ERROR",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_PARTIAL",
    "EXIT_USAGE",
    "CommandError",
    "cli",
    "parse_duration",
]

EXIT_OK = 0
EXIT_ERROR = 1  # unreachable server, Redis refused, unreadable file, declined prompt
EXIT_USAGE = 2  # bad arguments or options
EXIT_PARTIAL = 3  # done, with problems: bad import lines, doctor warnings (--strict), ...
EXIT_NOT_FOUND = 4  # the session asked for does not exist

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)?\s*$", re.IGNORECASE)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_NEVER = {"none", "never", "off"}


class CommandError(Exception):
    """An expected failure: printed as one line, with an exit code."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


def parse_duration(value: str) -> float:
    """Seconds in ``90``, ``90s``, ``15m``, ``1h``, ``2d``, ``1w``."""
    match = _DURATION.match(value)
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"{value!r} is not a duration like 90s, 15m, 1h, 2d or 1w")
    return float(match.group(1)) * _UNITS[(match.group(2) or "s").lower()]


def _duration(allow_never: bool = False) -> Any:
    """An option callback turning ``1h``-style text into seconds (None: not given or never)."""

    def convert(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
        if value is None:
            return None
        if allow_never and value.strip().lower() in _NEVER:
            return None
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc), ctx, param) from None

    return convert


# -- output helpers ----------------------------------------------------------------------


def _console(stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else 240
    return Console(file=stream, stderr=stderr, width=width, highlight=False)


def _note(message: str) -> None:
    click.echo(message, err=True)


def _emit_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def _when(value: datetime | None) -> str:
    if value is None:
        return "-"
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _span(seconds: float) -> str:
    seconds = max(int(seconds), 0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            big, rest = divmod(seconds, size)
            small = {"d": (3600, "h"), "h": (60, "m"), "m": (1, "s")}[unit]
            part = rest // small[0]
            return f"{big}{unit} {part}{small[1]}" if part else f"{big}{unit}"
    return f"{seconds}s"


def _expires_in(info: SessionInfo, now: datetime) -> str:
    if info.expires_at is None:
        return "never"
    return _span((info.expires_at - now).total_seconds())


def _info_json(admin: Admin, info: SessionInfo, now: datetime) -> dict[str, Any]:
    data = info.model_dump(mode="json")
    base, part = admin.session_part(info.id)
    if part is not None:  # e.g. LlamaIndex Memory's archive of session ``base``
        data["part_of"], data["part"] = base, part
    data["expires_in_seconds"] = (
        None if info.expires_at is None else round((info.expires_at - now).total_seconds(), 3)
    )
    return data


def _progress(console: Console, *, bytes_total: int | None = None) -> Progress:
    columns: list[Any] = [TextColumn("{task.description}"), BarColumn()]
    if bytes_total is not None:
        columns += [DownloadColumn(), TransferSpeedColumn()]
    else:
        columns += [MofNCompleteColumn()]
    columns.append(TimeElapsedColumn())
    return Progress(*columns, console=console, transient=True, disable=not console.is_terminal)


# -- the group ---------------------------------------------------------------------------


class State:
    """Per-invocation settings; connects on first use (``--help`` never connects)."""

    def __init__(self, url: str | None, prefix: str | None) -> None:
        overrides: dict[str, Any] = {}
        if url is not None:
            overrides["url"] = url
        if prefix is not None:
            overrides["prefix"] = prefix
        self.config = StoreConfig.from_env(**overrides)
        self._admin: Admin | None = None

    @property
    def admin(self) -> Admin:
        if self._admin is None:
            self._admin = Admin(self.config)
        return self._admin

    def close(self) -> None:
        if self._admin is not None:
            self._admin.close()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--url",
    metavar="URL",
    help="Redis URL (redis://, rediss://, unix://). Default: $CHATKEEP_URL, else $REDIS_URL, "
    "else redis://localhost:6379/0.",
)
@click.option(
    "--prefix",
    metavar="PREFIX",
    help="Key prefix of the conversations. Default: $CHATKEEP_PREFIX, else chatkeep.",
)
@click.version_option(__version__, prog_name="chatkeep")
@click.pass_context
def cli(ctx: click.Context, url: str | None, prefix: str | None) -> None:
    """See and manage the conversations chatkeep keeps in Redis.

    Exit codes: 0 done; 1 error (Redis unreachable or refusing, unreadable file,
    declined prompt); 2 bad arguments; 3 done with problems (bad import lines,
    doctor warnings with --strict, sessions that appeared during a purge);
    4 session not found.
    """
    state = State(url, prefix)
    ctx.obj = state
    ctx.call_on_close(state.close)


def _state(ctx: click.Context) -> State:
    state = ctx.find_object(State)
    assert state is not None
    return state


# -- sessions ----------------------------------------------------------------------------


_KIND_HELP = (
    "What to list: conversations (default), a kind of data features keep "
    "(langgraph-threads, langgraph-store, memory, cache...), or all."
)


@cli.command()
@click.option("--owner", metavar="USER", help="Only the sessions of this owner.")
@click.option("--kind", default="conversations", show_default=True, metavar="KIND", help=_KIND_HELP)
@click.option("--status", metavar="STATUS", help="Only the sessions with this status.")
@click.option(
    "--active-since",
    callback=_duration(),
    metavar="DURATION",
    help="Only sessions written within this long (90s, 15m, 1h, 2d, 1w).",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="Show at most this many sessions.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def sessions(  # noqa: PLR0917 (click passes the options by name)
    ctx: click.Context,
    owner: str | None,
    kind: str,
    status: str | None,
    active_since: float | None,
    limit: int,
    as_json: bool,
) -> None:
    """List live sessions, most recently active first; or, with --kind, what features
    keep besides conversations (LangGraph threads and store namespaces, long-term
    memory, caches)."""
    admin = _state(ctx).admin
    if kind != "conversations":
        _list_data(admin, kind, owner, active_since, limit, as_json)
        return
    found = admin.store.sessions(
        owner=owner, status=status, limit=None if active_since else limit + 1
    )
    now = datetime.now(timezone.utc)
    if active_since is not None:
        since = now - timedelta(seconds=active_since)
        found = [i for i in found if (i.updated_at or i.created_at or now) >= since]
    found.sort(key=lambda i: i.updated_at or i.created_at or now, reverse=True)
    more = len(found) > limit
    found = found[:limit]
    if as_json:
        _emit_json([_info_json(admin, i, now) for i in found])
        return
    console = _console()
    if not found:
        console.print("no sessions" + (f" of owner {owner!r}" if owner else ""))
        _owned_elsewhere(console, admin, owner)
        return
    table = _table(
        ("session", "left"),
        ("owner", "left"),
        ("status", "left"),
        ("title", "left"),
        ("messages", "right"),
        ("created", "left"),
        ("last active", "left"),
        ("expires in", "right"),
    )
    for info in found:
        table.add_row(
            _session_label(admin, info.id),
            Text(_one_line(info.owner or "-")),
            Text(_one_line(info.status or "-")),
            Text(_clip(_one_line(info.title), 40) if info.title else "-"),
            str(info.message_count),
            _when(info.created_at),
            _when(info.updated_at),
            _expires_in(info, now),
        )
    console.print(table)
    tail = f"{len(found)} session{'s' if len(found) != 1 else ''}"
    if more:
        tail += f" (more exist; raise --limit above {limit})"
    console.print(tail, style="dim")
    _owned_elsewhere(console, admin, owner)


def _session_label(admin: Admin, session_id: str) -> Text:
    """A session id as shown: a part of another session (LlamaIndex Memory's archive)
    as ``<session> [archived]``, reached with ``show <session> --part archived``."""
    base, part = admin.session_part(session_id)
    label = Text(_one_line(base))
    if part is not None:
        label.append(f" [{part}]", style="magenta")
    return label


def _list_data(  # noqa: PLR0917
    admin: Admin,
    kind: str,
    owner: str | None,
    active_since: float | None,
    limit: int,
    as_json: bool,
) -> None:
    names = list(admin.kinds()) if kind == "all" else [admin.kind(kind).name]
    now = datetime.now(timezone.utc)
    rows: list[tuple[str, Any]] = []
    if kind == "all":
        infos = admin.store.sessions(owner=owner, limit=None)
        rows += [("conversations", i) for i in infos]
    for name in names:
        rows += [(name, item) for item in admin.data_items(name, owner)]
    if active_since is not None:
        since = now - timedelta(seconds=active_since)
        rows = [(k, i) for k, i in rows if (i.updated_at or now) >= since]
    more = len(rows) > limit
    rows = rows[:limit]
    if as_json:
        _emit_json([_row_json(admin, k, i, now) for k, i in rows])
        return
    console = _console()
    if not rows:
        console.print(
            f"no {kind if kind != 'all' else 'data'}" + (f" of owner {owner!r}" if owner else "")
        )
        return
    table = _table(
        ("kind", "left"),
        ("id", "left"),
        ("owner", "left"),
        ("items", "right"),
        ("last active", "left"),
        ("expires in", "right"),
    )
    for name, row in rows:
        if isinstance(row, SessionInfo):
            table.add_row(
                name,
                _session_label(admin, row.id),
                Text(_one_line(row.owner or "-")),
                f"{row.message_count} messages",
                _when(row.updated_at),
                _expires_in(row, now),
            )
            continue
        expires = "-" if row.expires_at is None else _span((row.expires_at - now).total_seconds())
        table.add_row(
            name,
            Text(_one_line(row.id)),
            Text(_one_line(row.owner or "-")),
            _counted(row.count, admin.kind(name).unit),
            _when(row.updated_at),
            expires,
        )
    console.print(table)
    tail = f"{len(rows)} item{'s' if len(rows) != 1 else ''}"
    if more:
        tail += f" (more exist; raise --limit above {limit})"
    console.print(tail, style="dim")


def _counted(count: int, plural: str) -> str:
    """``1 entry``, ``2 entries``: a count with its unit (given plural)."""
    if count != 1:
        return f"{count} {plural}"
    singular = plural[:-3] + "y" if plural.endswith("ies") else plural.removesuffix("s")
    return f"{count} {singular}"


def _row_json(admin: Admin, kind: str, row: Any, now: datetime) -> dict[str, Any]:
    if isinstance(row, SessionInfo):
        return {"kind": kind, **_info_json(admin, row, now)}
    return {
        "kind": kind,
        "id": row.id,
        "owner": row.owner,
        "count": row.count,
        "unit": admin.kind(kind).unit,
        "updated_at": None if row.updated_at is None else row.updated_at.isoformat(),
        "expires_at": None if row.expires_at is None else row.expires_at.isoformat(),
    }


def _owned_elsewhere(console: Console, admin: Admin, owner: str | None) -> None:
    """What installed adapters keep of ``owner`` besides conversations (LangGraph
    threads): a data-protection request needs to see it too."""
    if owner is None:
        return
    for data in admin.owned_data(owner):
        console.print(
            f"owner {owner!r} also has {_counted(data.count, data.what)} "
            f"(chatkeep purge --owner deletes them too)",
            style="dim",
        )


# -- show --------------------------------------------------------------------------------


def _one_line(text: str) -> str:
    """``text`` with every character a terminal would act on (ESC, newlines...) shown
    escaped: titles, statuses and ids are data, never terminal commands or rows."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _lines(text: str) -> str:
    """The same for message text, whose newlines and tabs stay."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c in "\n\t" else repr(c)[1:-1] for c in text)


def _clip(text: str, width: int = 100) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _summary(value: Any, width: int) -> str:
    return _clip(json.dumps(value, ensure_ascii=False, default=str), width)


def _render(message: Message) -> Text:
    line = Text()
    line.append(_when(message.created_at), style="dim")
    line.append("  ")
    role = message.role + (f" ({message.name})" if message.name else "")
    line.append(role, style="bold cyan" if message.role == "user" else "bold")
    if message.tool_call_id:
        line.append(f" [result of {message.tool_call_id}]", style="dim")
    line.append(": ")
    line.append(_lines(message.text))
    if not isinstance(message.content, str):
        others = [
            str(p.get("type", "part"))
            for p in message.content
            if isinstance(p, dict) and p.get("type") != "text"
        ]
        if others:
            line.append(" " + " ".join(f"<{kind}>" for kind in others), style="magenta")
    for call in message.tool_calls:
        line.append("\n    → ", style="yellow")
        arguments = ", ".join(f"{k}={_summary(v, 40)}" for k, v in call.arguments.items())
        line.append(f"{call.name}({_clip(arguments)})", style="yellow")
        if call.id:
            line.append(f" [{call.id}]", style="dim")
    return line


@cli.command()
@click.argument("session")
@click.option("--last", type=click.IntRange(min=1), metavar="N", help="Only the newest N.")
@click.option(
    "--part",
    metavar="PART",
    help="A part of the session kept apart (archived: LlamaIndex Memory's archive).",
)
@click.option(
    "--kind",
    default="conversations",
    show_default=True,
    metavar="KIND",
    help="What SESSION names: a conversation, or an item of another kind "
    "(langgraph-threads, langgraph-store, memory, cache...).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (info and records).")
@click.pass_context
def show(  # noqa: PLR0917
    ctx: click.Context,
    session: str,
    last: int | None,
    part: str | None,
    kind: str,
    as_json: bool,
) -> None:
    """Print one conversation: time, role and text; tool calls summarised. With
    --kind, one item of another kind (a LangGraph thread, a namespace...).

    Reading does not refresh TTLs.
    """
    admin = _state(ctx).admin
    if kind != "conversations":
        found = admin.kind(kind).show(admin, session)
        if found is None:
            raise CommandError(f"{kind} {session!r} not found", EXIT_NOT_FOUND)
        if as_json:
            _emit_json(found)
        else:
            _console().print_json(data=found, ensure_ascii=True)  # stored text: never raw
        return
    if part is not None:
        session = admin.part_id(session, part)
    info = admin.info(session)
    if info is None:
        raise CommandError(f"session {_one_line(session)!r} not found", EXIT_NOT_FOUND)
    messages, unreadable = admin.tail(session, last)
    now = datetime.now(timezone.utc)
    if as_json:
        _emit_json(
            {
                "session": _info_json(admin, info, now),
                "messages": [json.loads(encode_record(m)) for m in messages],
                "unreadable_records": unreadable,
            }
        )
        return
    console = _console()
    head = Text()
    head.append(f"session {_one_line(admin.session_part(info.id)[0])}", style="bold")
    if part is not None:
        head.append(f" [{part}]", style="magenta")
    if info.title:
        head.append(f"  {_one_line(info.title)}")
    if info.status:
        head.append(f"  [{_one_line(info.status)}]", style="cyan")
    head.append(
        f"  owner {info.owner or '-'} · {plural(info.message_count, 'message')} · created "
        f"{_when(info.created_at)} · expires in {_expires_in(info, now)}",
        style="dim",
    )
    console.print(head)
    if last is not None and info.message_count > len(messages):
        console.print(
            f"… {plural(info.message_count - len(messages), 'earlier message')}", style="dim"
        )
    for message in messages:
        console.print(_render(message))
    if part is None:
        for label in admin.parts_of(session):
            console.print(
                f"… and its {label} part: chatkeep show {_one_line(session)} --part {label}",
                style="dim",
            )
    if unreadable:
        _note(f"warning: skipped {plural(unreadable, 'stored record')} that could not be decoded")


# -- export / import ---------------------------------------------------------------------


@contextmanager
def _output(path: str) -> Iterator[IO[bytes]]:
    """stdout for ``-``; else a temporary file renamed over ``path`` on success."""
    if path == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    target = Path(path)
    partial = target.with_name(target.name + ".partial")
    try:
        handle = partial.open("wb")
    except OSError as exc:
        raise CommandError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with handle:
            yield handle
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


@cli.command(name="export")
@click.option("--owner", metavar="USER", help="Only what this owner has.")
@click.option(
    "--kind",
    "kinds",
    metavar="KIND",
    multiple=True,
    help="Only this kind (repeatable): conversations, langgraph-threads, langgraph-store, "
    "memory, cache... Default: every kind (only conversations with --session).",
)
@click.option(
    "--session",
    "session_ids",
    metavar="SESSION",
    multiple=True,
    help="Only this session (repeatable).",
)
@click.option(
    "-o",
    "--output",
    default="-",
    metavar="FILE.jsonl",
    show_default=True,
    help="Where to write; - is standard output.",
)
@click.pass_context
def export_command(
    ctx: click.Context,
    owner: str | None,
    kinds: tuple[str, ...],
    session_ids: tuple[str, ...],
    output: str,
) -> None:
    """Write sessions to a JSONL file (all, one owner's, or the ones named), with what
    features keep (LangGraph threads and store namespaces, long-term memory, caches).

    Streams conversations: memory stays flat however many messages. Reading does not
    refresh TTLs.
    """
    if owner is not None and session_ids:
        raise click.UsageError("use either --owner or --session, not both")
    admin = _state(ctx).admin
    console = _console(stderr=True)
    with _output(output) as out, _progress(console) as progress:
        task = progress.add_task("exporting", total=None)
        for name in kinds:
            if name != "conversations":
                admin.kind(name)  # an unknown kind: before anything is written
        result = admin.export(
            out,
            owner=owner,
            sessions=list(session_ids) or None,
            kinds=list(kinds) or None,
            progress=lambda n: progress.advance(task, n),
        )
    where = "standard output" if output == "-" else output
    others = "".join(f", {_counted(n, admin.kind(k).what)}" for k, n in result.data.items())
    _note(
        f"exported {plural(result.sessions, 'session')}, "
        f"{plural(result.messages, 'message')}{others} to {where}"
    )
    if result.skipped_records:
        _note(f"warning: left out {plural(result.skipped_records, 'undecodable stored record')}")
    if result.skipped_contexts:
        _note(
            f"warning: left out the context of {plural(result.skipped_contexts, 'session')}: "
            "it holds values JSON cannot (bytes)"
        )
    for missing in result.missing:
        _note(f"session {missing!r} not found")
    if result.missing:
        ctx.exit(EXIT_NOT_FOUND)


@contextmanager
def _input(path: str) -> Iterator[tuple[IO[bytes], int | None]]:
    if path == "-":
        yield sys.stdin.buffer, None
        return
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror or exc}") from None
    with handle:
        yield handle, os.fstat(handle.fileno()).st_size


@cli.command(name="import")
@click.argument("file", metavar="FILE.jsonl")
@click.option(
    "--ttl",
    callback=_duration(allow_never=True),
    default=None,
    metavar="DURATION",
    help="TTL of the imported sessions (3600, 12h, 7d, none). Default: the configured TTL.",
)
@click.option(
    "--max-errors",
    type=click.IntRange(min=0),
    default=20,
    show_default=True,
    help="Print at most this many bad lines (all are counted).",
)
@click.pass_context
def import_command(ctx: click.Context, file: str, ttl: Any, max_errors: int) -> None:
    """Import a JSONL export (- reads standard input).

    Idempotent: a message whose id its session already holds is skipped, so importing
    a file twice stores each message once. Every line is validated; a bad line is
    reported with its number and the good ones are imported.
    """
    ttl_given = ctx.get_parameter_source("ttl") is not click.core.ParameterSource.DEFAULT
    admin = _state(ctx).admin
    console = _console(stderr=True)
    shown = 0

    def bad_line(number: int, reason: str) -> None:
        nonlocal shown
        shown += 1
        if shown <= max_errors:
            _note(f"line {number}: {reason}")

    with _input(file) as (handle, size), _progress(console, bytes_total=size) as progress:
        task = progress.add_task("importing", total=size)
        try:
            result = admin.import_lines(
                handle,
                ttl=ttl if ttl_given else UNSET,
                on_bad_line=bad_line,
                progress=lambda n: progress.advance(task, n),
            )
        except LineError as exc:
            raise CommandError(f"{file}: {exc}") from None
    if shown > max_errors:
        _note(f"... and {plural(shown - max_errors, 'more bad line')}")
    bad = len(result.bad_lines)
    others = "".join(f", {_counted(n, admin.kind(k).what)}" for k, n in result.data.items())
    _note(
        f"imported {plural(result.messages, 'message')} into "
        f"{plural(result.sessions, 'session')}{others} ({result.already_present} already "
        f"present, {plural(bad, 'bad line')})"
    )
    if not result.complete:
        _note("warning: no end-of-export line: the file may have been cut short")
    if bad:
        ctx.exit(EXIT_PARTIAL)


# -- rekey -------------------------------------------------------------------------------


@cli.command()
@click.option(
    "--cursor",
    type=click.IntRange(min=0),
    default=0,
    help="Continue an interrupted run from the cursor it printed. Default: the start.",
)
@click.pass_context
def rekey(ctx: click.Context, cursor: int) -> None:
    """Re-encrypt the prefix's conversations, memory and cache values under the current key.

    Keys come from CHATKEEP_ENCRYPTION_KEYS ('k2:<base64>,k1:<base64>'): the first
    one is the current key, the others are old keys still needed to read. Every
    record not under the current key (older keys, plain or only compressed records)
    is rewritten under it; records under the current key are left as they are. Safe
    while applications write: a record changed meanwhile is left and counted, and
    running rekey again finishes the job (interrupted: --cursor continues the walk).
    Once it reports nothing left, old keys can be dropped from the configuration.
    """
    state = _state(ctx)
    admin = state.admin
    console = _console(stderr=True)
    resume = cursor
    with _progress(console) as progress:
        task = progress.add_task("re-encrypting sessions", total=None)

        def step(result: RekeyResult) -> None:
            nonlocal resume
            resume = result.cursor  # a whole page of the index is done
            progress.update(task, completed=result.sessions)

        try:
            result = admin.rekey(cursor=cursor, progress=step)
        except KeyboardInterrupt:
            raise CommandError(f"interrupted: continue with rekey --cursor {resume}") from None
    left = result.unreadable + result.changed
    _note(
        f"{result.sessions} sessions: {result.rewritten} records and {result.values} "
        f"memory and cache values re-encrypted under key {result.key_id!r}, "
        f"{result.current} already under it, {result.unreadable} unreadable, "
        f"{result.changed} changed meanwhile"
    )
    if left:
        _note("run rekey again for records changed meanwhile; unreadable ones need their key")
        ctx.exit(EXIT_PARTIAL)


# -- delete / purge ----------------------------------------------------------------------


def _table(*columns: tuple[str, str]) -> Table:
    """A borderless table with these (title, justify) columns; long cells fold."""
    table = Table(box=None, header_style="bold")
    for column, justify in columns:
        table.add_column(column, justify=justify, overflow="fold")  # type: ignore[arg-type]
    return table


def _interactive() -> bool:
    return sys.stdin.isatty()


def _confirm(question: str, yes: bool) -> None:
    if yes:
        return
    if not _interactive():
        raise CommandError("refusing to delete without confirmation: add --yes")
    if not click.confirm(question, default=False, err=True):
        raise CommandError("aborted; nothing was deleted")


@cli.command()
@click.argument("session")
@click.option(
    "--kind",
    default="conversations",
    show_default=True,
    metavar="KIND",
    help="What SESSION names (langgraph-threads, langgraph-store, memory, cache...).",
)
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def delete(ctx: click.Context, session: str, kind: str, yes: bool) -> None:
    """Delete one session (messages and metadata), or one item of another kind."""
    admin = _state(ctx).admin
    if kind != "conversations":
        data_kind = admin.kind(kind)
        items = [i for i in admin.data_items(kind) if i.id == session]
        if not items:
            raise CommandError(f"{kind} {session!r} not found", EXIT_NOT_FOUND)
        item = items[0]
        _confirm(
            f"Delete {kind} {session!r} ({_counted(item.count, data_kind.unit)}, owner "
            f"{item.owner or '-'})?",
            yes,
        )
        click.echo(f"deleted {data_kind.delete(admin, items)} {data_kind.what} ({session!r})")
        return
    info = admin.info(session)
    if info is None:
        raise CommandError(f"session {session!r} not found", EXIT_NOT_FOUND)
    _confirm(
        f"Delete session {session!r} ({plural(info.message_count, 'message')}, "
        f"owner {info.owner or '-'})?",
        yes,
    )
    existed = admin.store.clear(session)
    count = info.message_count if existed else 0
    click.echo(f"deleted session {session!r} ({plural(count, 'message')})")


def _stdout_is_terminal() -> bool:
    return sys.stdout.isatty()


class _Lines:
    """Progress as plain lines on stderr (one a second at most, and the last): what
    ``--progress`` shows where there is no terminal to draw a bar on."""

    def __init__(self, description: str, total: int, unit: str) -> None:
        self.description, self.total, self.unit = description, total, unit
        self.done = 0
        self.shown = time.monotonic()

    def advance(self, n: int) -> None:
        self.done += n
        if self.done >= self.total or time.monotonic() - self.shown >= 1.0:
            self.shown = time.monotonic()
            _note(f"{self.description}: {self.done}/{self.total} {self.unit}")


@contextmanager
def _counting(
    description: str, total: int, unit: str, shown: bool | None
) -> Iterator[Callable[[int], None]]:
    """A progress callback: a bar on a terminal (stderr), plain lines with
    ``--progress`` elsewhere, nothing unless stdout is a terminal or it was asked for
    (scripted output stays clean)."""
    if shown is None:
        shown = _stdout_is_terminal()
    if not shown or total == 0:
        yield lambda n: None
        return
    console = _console(stderr=True)
    if not console.is_terminal:
        lines = _Lines(description, total, unit)
        yield lines.advance
        return
    with _progress(console) as progress:
        task = progress.add_task(f"{description} ({unit})", total=total)
        yield lambda n: progress.advance(task, n)


@cli.command()
@click.option("--owner", required=True, metavar="USER", help="The owner whose data goes.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Show progress on stderr. Default: when standard output is a terminal.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@click.pass_context
def purge(ctx: click.Context, owner: str, yes: bool, progress: bool | None, as_json: bool) -> None:
    """Delete every session of one owner (e.g. for a data-protection request), and
    what installed features keep of the owner (LangGraph threads...)."""
    admin = _state(ctx).admin
    found = admin.owner_sessions(owner)
    others = admin.owned_data(owner)  # what adapters keep of the owner (LangGraph threads)
    if not found and not others:
        if as_json:
            _emit_json({"owner": owner, "sessions": 0, "messages": 0, "appeared": 0, "other": {}})
        else:
            click.echo(f"owner {owner!r} has no sessions; nothing deleted")
        return
    messages = sum(i.message_count for i in found)
    extra = "".join(f" and {_counted(data.count, data.what)}" for data in others)
    _confirm(
        f"Delete {plural(len(found), 'session')} ({plural(messages, 'message')}){extra} "
        f"of owner {owner!r}? "
        "This cannot be undone.",
        yes,
    )
    with _counting("purging", len(found), "sessions", progress) as advance:
        result = admin.purge(owner, found, progress=advance)
    deleted = {data.what: data.delete() for data in others}
    if as_json:
        _emit_json(
            {
                "owner": owner,
                "sessions": result.sessions,
                "messages": result.messages,
                "appeared": result.appeared,
                "other": deleted,
            }
        )
    else:
        click.echo(
            f"deleted {plural(result.sessions, 'session')} "
            f"({plural(result.messages, 'message')}) of owner {owner!r}"
        )
        for what, count in deleted.items():
            click.echo(f"deleted {_counted(count, what)} of owner {owner!r}")
    if result.appeared:
        _note(
            f"warning: {plural(result.appeared, 'new session')} of {owner!r} appeared meanwhile; "
            "run purge again"
        )
        ctx.exit(EXIT_PARTIAL)


# -- stats / doctor ----------------------------------------------------------------------


def _bytes(n: int | None) -> str:
    if n is None:
        return "unknown (MEMORY USAGE not permitted)"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


@cli.command()
@click.option(
    "--samples",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="Sessions whose MEMORY USAGE is measured for the size estimate.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def stats(ctx: click.Context, samples: int, as_json: bool) -> None:
    """Sessions, messages, estimated bytes, TTLs, owners; and the fallback settings."""
    state = _state(ctx)
    data = state.admin.stats(samples=samples)
    config = state.config
    data["fallback"] = {
        "mode": config.fallback,
        "journal_size": config.journal_size,
        "mirror_sessions": config.mirror_sessions,
        "mirror_messages": config.mirror_messages,
        "probe_interval": config.probe_interval,
        "probe_max": config.probe_max,
    }
    if as_json:
        _emit_json(data)
        return
    console = _console()
    table = Table(box=None, show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("prefix", Text(data["prefix"]))
    table.add_row("sessions", str(data["sessions"]))
    table.add_row("messages", str(data["messages"]))
    table.add_row("largest session", plural(data["largest_session"], "message"))
    table.add_row(
        "owners",
        f"{data['owners']} ({plural(data['sessions_without_owner'], 'session')} without owner)",
    )
    table.add_row(
        "memory",
        _bytes(data["bytes_estimated"])
        + (
            f" (estimated from {plural(data['bytes_sampled_sessions'], 'sampled session')})"
            if data["bytes_estimated"] is not None
            else ""
        ),
    )
    table.add_row("expires in", ", ".join(f"{k}: {v}" for k, v in data["expires_in"].items()))
    table.add_row(
        "ttl",
        ", ".join(
            f"{row['ttl']}: {row['sessions']} session{'s' if row['sessions'] != 1 else ''}"
            for row in data["ttls"]
        )
        or "-",
    )
    table.add_row(
        "fallback",
        f"{config.fallback}"
        + (
            f" (journal {plural(config.journal_size, 'write')}, mirror "
            f"{plural(config.mirror_sessions, 'session')} x "
            f"{plural(config.mirror_messages, 'message')}, probe {config.probe_interval:g}s"
            f"..{config.probe_max:g}s)"
            if config.fallback == "memory"
            else " (errors are raised)"
        ),
    )
    console.print(table)


_MARKS = {"ok": ("✓", "green"), "warn": ("!", "yellow"), "fail": ("✗", "red")}


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a report.")
@click.option("--strict", is_flag=True, help="Exit 3 when a check only warns.")
@click.pass_context
def doctor(ctx: click.Context, as_json: bool, strict: bool) -> None:
    """Check that Redis is fit for chatkeep: connectivity, version and mode, latency,
    ACL permissions, eviction policy and persistence."""
    checks = run_checks(_state(ctx).admin)
    if as_json:
        _emit_json([c.as_dict() for c in checks])
    else:
        console = _console()
        for check in checks:
            mark, color = _MARKS[check.status]
            line = Text()
            line.append(f"{mark} ", style=f"bold {color}")
            line.append(f"{check.name}: ", style="bold")
            line.append(check.summary)
            console.print(line)
            if check.advice:
                console.print(Text(f"    {check.advice}", style="dim"))
    if any(c.status == "fail" for c in checks):
        ctx.exit(EXIT_ERROR)
    if strict and any(c.status == "warn" for c in checks):
        ctx.exit(EXIT_PARTIAL)


# -- journal -----------------------------------------------------------------------------

_PATH_HELP = "The journal file (journal_path). Default: $CHATKEEP_JOURNAL_PATH."


def _journal_path(state: State, path: str | None) -> str:
    found = path or state.config.journal_path
    if not found:
        raise click.UsageError("name the journal file: --path FILE (or CHATKEEP_JOURNAL_PATH)")
    return found


def _pending_json(entry: PendingWrites) -> dict[str, Any]:
    return {
        "redis": entry.target,
        "family": entry.family,
        "prefix": entry.prefix,
        "key": entry.key,
        "writes": entry.writes,
        "bytes": entry.bytes,
        "oldest": datetime.fromtimestamp(entry.oldest, timezone.utc).isoformat(timespec="seconds"),
    }


@cli.group()
def journal() -> None:
    """The durable fallback journal (journal_path): what waits for Redis, and replaying it."""


@journal.command(name="show")
@click.option("--path", metavar="FILE", help=_PATH_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def journal_show(ctx: click.Context, path: str | None, as_json: bool) -> None:
    """Writes a durable journal holds: how many and their bytes, per Redis, family and
    session, oldest first. Never their content; reads the file only (no Redis needed)."""
    file = _journal_path(_state(ctx), path)
    entries = pending_writes(file)
    writes, size = sum(e.writes for e in entries), sum(e.bytes for e in entries)
    if as_json:
        _emit_json(
            {
                "path": file,
                "writes": writes,
                "bytes": size,
                "keys": [_pending_json(e) for e in entries],
            }
        )
        return
    console = _console()
    console.print(
        Text(f"{file}: {writes} pending write{'s' if writes != 1 else ''}, {_bytes(size)}")
    )
    if not entries:
        return
    table = _table(
        ("redis", "left"),
        ("family", "left"),
        ("prefix", "left"),
        ("session", "left"),
        ("writes", "right"),
        ("bytes", "right"),
        ("oldest", "left"),
    )
    for entry in entries:
        table.add_row(
            Text(entry.target),
            Text(entry.family),
            Text(entry.prefix or "-"),
            Text(entry.key),
            str(entry.writes),
            str(entry.bytes),
            _when(datetime.fromtimestamp(entry.oldest, timezone.utc)),
        )
    console.print(table)


@journal.command(name="replay")
@click.option("--path", metavar="FILE", help=_PATH_HELP)
@click.pass_context
def journal_replay(ctx: click.Context, path: str | None) -> None:
    """Replay a durable journal to the Redis of --url, as a process of the application
    with that journal_path does once Redis is back.

    One replayer at a time: while another process replays the file, its writes stay.
    Exit 1 if Redis cannot be reached, 3 if writes remain.
    """
    state = _state(ctx)
    file = _journal_path(state, path)
    result = replay_journal(state.config, file)
    where = state.config.safe_url
    if result.left and not result.reached:
        raise CommandError(
            f"cannot reach Redis at {where} ({result.last_error}); "
            f"{plural(result.left, 'journaled write')} waiting in {file}"
        )
    click.echo(
        f"replayed {plural(result.replayed, 'write')} to {where} ({result.rejected} rejected, "
        f"{result.conflicts} of them conflicts); {result.left} left"
    )
    if result.others:
        count = sum(e.writes for e in result.others)
        targets = ", ".join(sorted({e.target for e in result.others}))
        _note(f"left alone: {plural(count, 'write')} in {file} for other Redis servers ({targets})")
    if result.left:
        _note(
            "writes remain: another process may be replaying this journal, or Redis "
            f"refused them for now ({result.last_error})"
        )
        ctx.exit(EXIT_PARTIAL)


# -- entry point -------------------------------------------------------------------------


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"chatkeep: error: {message}", err=True)
    raise SystemExit(code)


def run(args: list[str] | None = None) -> int:
    """Run the command; expected failures become one line on stderr and an exit code."""
    try:
        result = cli.main(args=args, prog_name="chatkeep", standalone_mode=False)
    except click.exceptions.Abort:
        _fail("aborted", EXIT_ERROR)
    except click.UsageError as exc:
        if isinstance(exc, getattr(click.exceptions, "NoArgsIsHelpError", ())) and exc.ctx:
            click.echo(exc.ctx.get_help(), err=True)  # bare `chatkeep`: the help, as usual
            return EXIT_USAGE
        where = exc.ctx.command_path if exc.ctx else "chatkeep"
        _fail(f"{exc.format_message()} (see '{where} --help')", EXIT_USAGE)
    except click.ClickException as exc:
        _fail(exc.format_message(), exc.exit_code)
    except CommandError as exc:
        _fail(str(exc), exc.code)
    except ConfigurationError as exc:
        _fail(str(exc), EXIT_USAGE)
    except ChatkeepError as exc:
        # The CLI runs with fallback="raise" on purpose; the store's hint adds nothing.
        _fail(str(exc).replace("; fallback is off", ""), EXIT_ERROR)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except BrokenPipeError:  # e.g. `chatkeep export | head`
        sys.stderr.close()
        return EXIT_ERROR
    return result if isinstance(result, int) else EXIT_OK
