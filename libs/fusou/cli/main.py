"""``fusou``: run the system, its services, and clients of its RPCs."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import traceback
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, cast

from fusou import logs
from fusou.config import ConfigError, Settings

if TYPE_CHECKING:
    import grpc

    from fusou.server.app import FusouServer


def _positive_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer (got {raw!r})") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {value})")
    return value


_TARGET_HELP = "host:port (default: FUSOU_TARGET, or localhost:50051)"


def _version() -> str:
    try:
        return metadata.version("fusou")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fusou", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("up", help="run the whole system on this machine (embedded defaults)")

    serve = sub.add_parser("serve", help="run the named services (for containers)")
    serve.add_argument(
        "services", nargs="+", metavar="SERVICE", help="ingest, archiver, compactor, reader"
    )

    sub.add_parser("migrate", help="apply database migrations to FUSOU_DATABASE_URL")

    from fusou.cli import lake

    lake.add_parser(sub)

    token = sub.add_parser(
        "token",
        help="make a new bearer token and the entry that configures it (FUSOU_AUTH_TOKENS)",
    )
    token.add_argument("--name", required=True, help="who holds it (shown in logs)")
    token.add_argument(
        "--role",
        required=True,
        action="append",
        choices=("ingest", "read", "admin"),
        help="ingest (Ingest, UploadRaw, DeclareTable), read (ReadRange) or admin (all, and "
        "Archive, Compact, GetStats); repeat for several",
    )
    token.add_argument(
        "--dataset",
        required=True,
        action="append",
        help='a dataset it may touch, "prefix*", or "*" for all; repeat for several',
    )

    ingest = sub.add_parser("ingest", help="send a JSON-lines or Parquet file to Ingest")
    ingest.add_argument("dataset")
    ingest.add_argument("table")
    ingest.add_argument("file", type=Path)
    ingest.add_argument("--batch-size", type=_positive_int, default=1000)
    ingest.add_argument("--target", default=None, help=_TARGET_HELP)
    ingest.add_argument("--quiet", action="store_true", help="no progress bar")

    archive = sub.add_parser(
        "archive", help="move hot rows older than the minimum age to cold files (for CronJobs)"
    )
    archive.add_argument("--dataset", default="", help="only this dataset")
    archive.add_argument("--table", default="", help="only this table (needs --dataset)")
    archive.add_argument(
        "--min-age-seconds",
        type=float,
        default=None,
        help="override FUSOU_ARCHIVE_MIN_AGE_S of the server",
    )
    archive.add_argument("--max-rows-per-table", type=int, default=0)
    archive.add_argument("--timeout", type=float, default=3600.0, help="seconds")
    archive.add_argument("--target", default=None, help=_TARGET_HELP)

    compact = sub.add_parser(
        "compact",
        help="compact raw, cold and small files into optimized Parquet (for CronJobs); "
        "without --dataset, the datasets flagged for compaction",
    )
    compact.add_argument("--dataset", default="", help="only this dataset")
    compact.add_argument("--table", default="", help="only this table (needs --dataset)")
    compact.add_argument("--timeout", type=float, default=3600.0, help="seconds")
    compact.add_argument("--target", default=None, help=_TARGET_HELP)

    purge = sub.add_parser(
        "purge",
        help="delete every row, object and catalog entry of a dataset, then verify that "
        "nothing is left (PurgeDataset); run again to complete an interrupted purge",
    )
    purge.add_argument("dataset")
    purge.add_argument(
        "--yes", action="store_true", help="confirm: the dataset's data cannot be brought back"
    )
    purge.add_argument("--timeout", type=float, default=3600.0, help="seconds")
    purge.add_argument("--target", default=None, help=_TARGET_HELP)

    delete = sub.add_parser(
        "delete",
        help="delete a table's rows in a time range, optionally only those meeting conditions "
        "(DeleteRows)",
    )
    delete.add_argument("dataset")
    delete.add_argument("table")
    delete.add_argument("--from", dest="start", required=True, help="start (inclusive)")
    delete.add_argument("--to", dest="end", required=True, help="end (exclusive)")
    delete.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="CONDITION",
        help="delete only rows meeting it (repeat: all of them), as for `fusou read`",
    )
    delete.add_argument("--yes", action="store_true", help="confirm: deleted rows are gone")
    delete.add_argument("--timeout", type=float, default=600.0, help="seconds")
    delete.add_argument("--target", default=None, help=_TARGET_HELP)

    declare = sub.add_parser(
        "declare",
        help="declare a table before data arrives, or change its retention (DeclareTable)",
    )
    declare.add_argument("dataset")
    declare.add_argument("table")
    declare.add_argument("--time-field", default="", help="epoch-ms time field (timestamp)")
    declare.add_argument(
        "--key", action="append", default=[], metavar="FIELD", help="a key field (repeat)"
    )
    declare.add_argument(
        "--schema", type=Path, default=None, help="an Avro record schema (JSON file)"
    )
    declare.add_argument(
        "--retention",
        default=None,
        help="how long rows are kept, by their time: 30d, 12h, 90m, 3600s or seconds; "
        "0 for ever (unset: as it is)",
    )
    declare.add_argument("--timeout", type=float, default=60.0, help="seconds")
    declare.add_argument("--target", default=None, help=_TARGET_HELP)

    retention = sub.add_parser(
        "retention",
        help="delete the rows older than each table's retention (EnforceRetention, for CronJobs)",
    )
    retention.add_argument("--dataset", default="", help="only this dataset")
    retention.add_argument("--table", default="", help="only this table (needs --dataset)")
    retention.add_argument("--timeout", type=float, default=3600.0, help="seconds")
    retention.add_argument("--target", default=None, help=_TARGET_HELP)

    upload = sub.add_parser(
        "upload", help="send Parquet files as one raw bundle to UploadRaw (TABLE=FILE ...)"
    )
    upload.add_argument("dataset")
    upload.add_argument("fragments", nargs="+", metavar="TABLE=FILE.parquet")
    upload.add_argument("--request-id", default="", help="idempotency key")
    upload.add_argument("--timeout", type=float, default=3600.0, help="seconds")
    upload.add_argument("--target", default=None, help=_TARGET_HELP)

    read = sub.add_parser("read", help="read a time range as JSON lines or Parquet")
    read.add_argument("dataset")
    read.add_argument("table")
    read.add_argument(
        "--from",
        dest="start",
        required=True,
        help="start (inclusive): RFC 3339 or epoch milliseconds",
    )
    read.add_argument(
        "--to", dest="end", required=True, help="end (exclusive): RFC 3339 or epoch milliseconds"
    )
    read.add_argument(
        "--columns", default="", help="comma-separated; the time field is always included"
    )
    read.add_argument("--limit", type=int, default=0)
    read.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="CONDITION",
        help="keep rows meeting it (repeat: all of them): 'hp >= 40', \"ship in ('a', 'b')\", "
        "'note is null' (applied after deduplication)",
    )
    read.add_argument("--format", choices=("jsonl", "parquet"), default="jsonl")
    read.add_argument(
        "-o", "--output", type=Path, default=None, help="file (default: standard output)"
    )
    read.add_argument("--quiet", action="store_true", help="no progress bar")
    read.add_argument("--timeout", type=float, default=600.0, help="seconds")
    read.add_argument("--target", default=None, help=_TARGET_HELP)
    read.add_argument(
        "--flight-target",
        default=None,
        help="the reader's Arrow Flight host:port (default: FUSOU_FLIGHT_TARGET, or the "
        "target's host on port 8815)",
    )
    read.add_argument(
        "--grpc",
        action="store_true",
        help="read through ReadRange on the gRPC port instead of Arrow Flight",
    )

    stats = sub.add_parser("stats", help="hot/cold distribution and compression per table")
    stats.add_argument("--dataset", default="")
    stats.add_argument("--table", default="")
    stats.add_argument("--timeout", type=float, default=60.0, help="seconds")
    stats.add_argument("--target", default=None, help=_TARGET_HELP)
    return parser


# The status of a command whose reader went away (`fusou read ... | head`): what the shell
# reports for other programs that a closed pipe stops (128 + SIGPIPE).
EXIT_BROKEN_PIPE = 141


def main(argv: list[str] | None = None) -> int:
    try:
        code = _main(argv)
    except BrokenPipeError:
        # Whatever is still buffered for standard output goes nowhere, so that the flush at
        # exit does not report the closed pipe once more.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_BROKEN_PIPE
    except BaseException:
        if _flight_calls_left():
            traceback.print_exc()
            _exit_now(1)
        raise
    if _flight_calls_left():
        _exit_now(code)
    return code


def _flight_calls_left() -> bool:
    """Whether a served Arrow Flight call outlived the server's stop (only a process that
    served Flight has loaded the module that knows)."""
    served = sys.modules.get("fusou.server.flight")
    return served is not None and bool(served.calls_outlived_stop())


def _exit_now(status: int) -> NoReturn:
    """Leave without waiting for what still runs (the Flight call holds a thread of Flight's
    C++ server, which would keep the process alive); everything else is closed by now."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def _main(argv: list[str] | None) -> int:
    from fusou.db.reach import DatabaseUnreachable

    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"fusou: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log.level, settings.log.format)
    try:
        return _dispatch(args, settings)
    except ConfigError as exc:
        print(f"fusou: {exc}", file=sys.stderr)
        return 2
    except DatabaseUnreachable as exc:
        print(f"fusou: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _announce_ports(server: FusouServer) -> None:
    lines = [f"listening on port {server.port}"]
    if server.flight_port:
        lines.append(f"Arrow Flight on port {server.flight_port}")
    print("\n".join(lines), flush=True)


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "up":
        from fusou.cli.hosting import up

        return up(settings)
    if args.command == "serve":
        from fusou.cli.hosting import check_services, serve

        check_services(args.services)
        asyncio.run(
            serve(
                settings,
                args.services,
                on_started=_announce_ports,
            )
        )
        return 0
    if args.command == "migrate":
        from fusou.db.migrate import migrate_url

        if not settings.database.url:
            raise ConfigError("missing configuration: FUSOU_DATABASE_URL")
        applied = asyncio.run(migrate_url(settings.database.url))
        print(json.dumps({"applied": applied}))
        return 0
    if args.command == "token":
        return _token(args)
    if args.command == "lake":
        from fusou.cli import lake
        from fusou.cli.hosting import default_data_dir

        return lake.run(args, settings, default_data_dir(settings))
    return _client(args, settings)


def _token(args: argparse.Namespace) -> int:
    from fusou.auth.tokens import entry_from_json, hash_token, new_token

    token = new_token()
    raw = {
        "name": args.name,
        "sha256": hash_token(token),
        "role": args.role[0] if len(args.role) == 1 else args.role,
        "datasets": args.dataset,
    }
    try:
        entry = entry_from_json(raw)
    except ValueError as exc:
        print(f"fusou token: {exc}", file=sys.stderr)
        return 2
    # The token is shown once; only its hash goes into the configuration.
    print(json.dumps({"token": token, "entry": entry.describe()}))
    return 0


def _client(args: argparse.Namespace, settings: Settings) -> int:
    """A client command: its failures reported in one place, as one line each (exit 2 for an
    unusable command line or file, 1 for a failed call)."""
    import grpc

    from fusou.cli.flight_errors import FlightCallFailed, FlightUnreachable
    from fusou.cli.input_error import InputError

    commands = {
        "ingest": _ingest,
        "declare": _declare,
        "archive": _admin,
        "stats": _admin,
        "compact": _admin,
        "purge": _admin,
        "delete": _admin,
        "retention": _admin,
        "upload": _upload,
        "read": _read,
    }
    from fusou.cli.connection import Connection

    args.conn = Connection.of(settings.client, args.target, getattr(args, "flight_target", None))
    try:
        return commands[args.command](args)
    except InputError as exc:
        print(f"fusou {args.command}: {exc}", file=sys.stderr)
        return 2
    except grpc.RpcError as exc:
        return _rpc_failed(args.command, exc)
    except (FlightCallFailed, FlightUnreachable) as exc:
        code = "UNAVAILABLE: " if isinstance(exc, FlightUnreachable) else ""
        print(f"fusou {args.command}: {code}{exc}", file=sys.stderr)
        return 1


def _rpc_failed(command: str, exc: grpc.RpcError) -> int:
    """A failed call as one readable line (the status and the server's message), exit 1."""
    call = cast("grpc.Call", exc)  # what the channel raises is both an error and the call
    print(f"fusou {command}: {call.code().name}: {call.details()}", file=sys.stderr)
    return 1


def _read(args: argparse.Namespace) -> int:
    from fusou.cli.read_client import parse_time, run_read
    from fusou.cli.where import parse_where

    stats = run_read(
        args.conn,
        args.dataset,
        args.table,
        start=parse_time(args.start),
        end=parse_time(args.end),
        columns=[c.strip() for c in args.columns.split(",") if c.strip()],
        limit=args.limit,
        filters=[parse_where(w) for w in args.where],
        output_format=args.format,
        output=args.output,
        quiet=args.quiet,
        timeout=args.timeout,
        via_grpc=args.grpc,
    )
    if not args.quiet:
        print(json.dumps({"stats": stats}), file=sys.stderr)
    return 0


def _admin(args: argparse.Namespace) -> int:
    from fusou.cli.admin_client import (
        run_archive,
        run_compact,
        run_delete,
        run_purge,
        run_retention,
        run_stats,
    )
    from fusou.cli.input_error import InputError
    from fusou.cli.read_client import parse_time
    from fusou.cli.where import parse_where

    failures: list[str] = []
    if args.command == "delete":
        filters = [parse_where(w) for w in args.where]
        start, end = parse_time(args.start), parse_time(args.end)
        if not args.yes:
            raise InputError(
                f"deleting rows of {args.dataset}/{args.table} cannot be undone: "
                "add --yes to confirm"
            )
        output = run_delete(
            args.conn,
            dataset=args.dataset,
            table=args.table,
            start=start,
            end=end,
            filters=filters,
            timeout=args.timeout,
        )
    elif args.command == "retention":
        output, failures = run_retention(
            args.conn, dataset=args.dataset, table=args.table, timeout=args.timeout
        )
    elif args.command == "purge":
        if not args.yes:
            raise InputError(
                f"purging deletes every row and file of dataset {args.dataset!r} for good: "
                "add --yes to confirm"
            )
        output, failures = run_purge(args.conn, dataset=args.dataset, timeout=args.timeout)
    elif args.command == "compact":
        output, failures = run_compact(
            args.conn, dataset=args.dataset, table=args.table, timeout=args.timeout
        )
    elif args.command == "archive":
        output, failures = run_archive(
            args.conn,
            dataset=args.dataset,
            table=args.table,
            min_age_seconds=args.min_age_seconds,
            max_rows_per_table=args.max_rows_per_table,
            timeout=args.timeout,
        )
    else:
        output = run_stats(args.conn, dataset=args.dataset, table=args.table, timeout=args.timeout)
    print(output)
    # The run went on past these (the summary has the rest); a CronJob still has to fail.
    for failure in failures:
        print(f"fusou {args.command}: failed: {failure}", file=sys.stderr)
    return 1 if failures else 0


def _upload(args: argparse.Namespace) -> int:
    from fusou.cli.upload_client import run_upload

    print(
        run_upload(
            args.conn,
            args.dataset,
            args.fragments,
            request_id=args.request_id,
            timeout=args.timeout,
        )
    )
    return 0


def _declare(args: argparse.Namespace) -> int:
    from fusou.cli.admin_client import run_declare
    from fusou.cli.input_error import InputError

    schema = ""
    if args.schema is not None:
        try:
            schema = args.schema.read_text()
        except OSError as exc:
            raise InputError(f"cannot read {args.schema}: {exc.strerror}") from None
    print(
        run_declare(
            args.conn,
            dataset=args.dataset,
            table=args.table,
            time_field=args.time_field,
            key_fields=args.key,
            avro_schema=schema,
            retention=args.retention,
            timeout=args.timeout,
        )
    )
    return 0


def _ingest(args: argparse.Namespace) -> int:
    from fusou.cli.ingest_client import run_ingest

    summary = run_ingest(
        args.conn,
        args.dataset,
        args.table,
        args.file,
        batch_size=args.batch_size,
        quiet=args.quiet,
    )
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
