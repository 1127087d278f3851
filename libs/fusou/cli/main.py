"""``fusou``: run the system, its services, and clients of its RPCs."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, cast

from fusou.config import ConfigError, Settings

if TYPE_CHECKING:
    import grpc


def _positive_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer (got {raw!r})") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {value})")
    return value


def _target_default() -> str:
    return os.environ.get("FUSOU_TARGET", "localhost:50051")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fusou", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("up", help="run the whole system on this machine (embedded defaults)")

    serve = sub.add_parser("serve", help="run the named services (for containers)")
    serve.add_argument(
        "services", nargs="+", metavar="SERVICE", help="ingest, archiver, compactor, reader"
    )

    sub.add_parser("migrate", help="apply database migrations to FUSOU_DATABASE_URL")

    ingest = sub.add_parser("ingest", help="send a JSON-lines or Parquet file to Ingest")
    ingest.add_argument("dataset")
    ingest.add_argument("table")
    ingest.add_argument("file", type=Path)
    ingest.add_argument("--batch-size", type=_positive_int, default=1000)
    ingest.add_argument("--target", default=_target_default())
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
    archive.add_argument("--target", default=_target_default())

    compact = sub.add_parser(
        "compact",
        help="compact raw, cold and small files into optimized Parquet (for CronJobs); "
        "without --dataset, the datasets flagged for compaction",
    )
    compact.add_argument("--dataset", default="", help="only this dataset")
    compact.add_argument("--table", default="", help="only this table (needs --dataset)")
    compact.add_argument("--timeout", type=float, default=3600.0, help="seconds")
    compact.add_argument("--target", default=_target_default())

    upload = sub.add_parser(
        "upload", help="send Parquet files as one raw bundle to UploadRaw (TABLE=FILE ...)"
    )
    upload.add_argument("dataset")
    upload.add_argument("fragments", nargs="+", metavar="TABLE=FILE.parquet")
    upload.add_argument("--request-id", default="", help="idempotency key")
    upload.add_argument("--timeout", type=float, default=3600.0, help="seconds")
    upload.add_argument("--target", default=_target_default())

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
    read.add_argument("--format", choices=("jsonl", "parquet"), default="jsonl")
    read.add_argument(
        "-o", "--output", type=Path, default=None, help="file (default: standard output)"
    )
    read.add_argument("--quiet", action="store_true", help="no progress bar")
    read.add_argument("--timeout", type=float, default=600.0, help="seconds")
    read.add_argument("--target", default=_target_default())

    stats = sub.add_parser("stats", help="hot/cold distribution and compression per table")
    stats.add_argument("--dataset", default="")
    stats.add_argument("--table", default="")
    stats.add_argument("--timeout", type=float, default=60.0, help="seconds")
    stats.add_argument("--target", default=_target_default())
    return parser


def _configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"fusou: {exc}", file=sys.stderr)
        return 2
    _configure_logging(settings)
    try:
        return _dispatch(args, settings)
    except ConfigError as exc:
        print(f"fusou: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "up":
        from fusou.cli.hosting import up

        return up(settings)
    if args.command == "serve":
        from fusou.cli.hosting import serve, service_factories

        service_factories(args.services)
        asyncio.run(
            serve(
                settings,
                args.services,
                on_started=lambda port: print(f"listening on port {port}", flush=True),
            )
        )
        return 0
    if args.command == "migrate":
        from fusou.db.migrate import migrate_url

        if not settings.database_url:
            raise ConfigError("missing configuration: FUSOU_DATABASE_URL")
        applied = asyncio.run(migrate_url(settings.database_url))
        print(json.dumps({"applied": applied}))
        return 0
    return _client(args)


def _client(args: argparse.Namespace) -> int:
    """A client command: its failures reported in one place, as one line each (exit 2 for an
    unusable command line or file, 1 for a failed call)."""
    import grpc

    from fusou.cli.input_error import InputError

    commands = {
        "ingest": _ingest,
        "archive": _admin,
        "stats": _admin,
        "compact": _admin,
        "upload": _upload,
        "read": _read,
    }
    try:
        return commands[args.command](args)
    except InputError as exc:
        print(f"fusou {args.command}: {exc}", file=sys.stderr)
        return 2
    except grpc.RpcError as exc:
        return _rpc_failed(args.command, exc)


def _rpc_failed(command: str, exc: grpc.RpcError) -> int:
    """A failed call as one readable line (the status and the server's message), exit 1."""
    call = cast("grpc.Call", exc)  # what the channel raises is both an error and the call
    print(f"fusou {command}: {call.code().name}: {call.details()}", file=sys.stderr)
    return 1


def _read(args: argparse.Namespace) -> int:
    from fusou.cli.read_client import parse_time, run_read

    stats = run_read(
        args.target,
        args.dataset,
        args.table,
        start=parse_time(args.start),
        end=parse_time(args.end),
        columns=[c.strip() for c in args.columns.split(",") if c.strip()],
        limit=args.limit,
        output_format=args.format,
        output=args.output,
        quiet=args.quiet,
        timeout=args.timeout,
    )
    if not args.quiet:
        print(json.dumps({"stats": stats}), file=sys.stderr)
    return 0


def _admin(args: argparse.Namespace) -> int:
    from fusou.cli.admin_client import run_archive, run_compact, run_stats

    ok = True
    if args.command == "compact":
        output, ok = run_compact(
            args.target, dataset=args.dataset, table=args.table, timeout=args.timeout
        )
    elif args.command == "archive":
        output = run_archive(
            args.target,
            dataset=args.dataset,
            table=args.table,
            min_age_seconds=args.min_age_seconds,
            max_rows_per_table=args.max_rows_per_table,
            timeout=args.timeout,
        )
    else:
        output = run_stats(
            args.target, dataset=args.dataset, table=args.table, timeout=args.timeout
        )
    print(output)
    return 0 if ok else 1


def _upload(args: argparse.Namespace) -> int:
    from fusou.cli.upload_client import run_upload

    print(
        run_upload(
            args.target,
            args.dataset,
            args.fragments,
            request_id=args.request_id,
            timeout=args.timeout,
        )
    )
    return 0


def _ingest(args: argparse.Namespace) -> int:
    from fusou.cli.ingest_client import run_ingest

    summary = run_ingest(
        args.target,
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
