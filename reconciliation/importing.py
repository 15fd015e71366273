"""Statement import: all or nothing, every bad row reported, the same file never twice.

Rows stream from the parser straight into the database (COPY on PostgreSQL) inside one
transaction; a bad row anywhere rolls the whole file back, so nothing is half-imported.
"""

import hashlib
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from channels.models import Channel
from oms.errors import Conflict, DomainError

from .matching import queue_run
from .models import ReconciliationRun, Statement, StatementLine
from .statements import RowError, StatementFormatError, StatementRow, open_statement

SETTLEMENT_PROFILE = "channel_settlement"
PROFILE_PROVIDERS = {"wechatpay_trade": "wechatpay", "alipay_account": "alipay"}
BATCH = 5000
LIMITS = {"transaction_no": 64, "order_ref": 64}
COLUMNS = ("statement_id", "row", "transaction_no", "match_key", "order_ref", "occurred_at",
           "business_date", "amount", "fee", "kind", "counterparty", "memo", "currency")


class StatementRejected(DomainError):
    """The file is refused; `rows` lists every bad row as CONTRACTS.md shows them."""

    status_code = 400

    def __init__(self, detail: str, rows: list[dict]):
        super().__init__(detail, rows=rows)
        self.rows = rows


class FileTooLarge(DomainError):
    status_code = 413


Progress = Callable[[int, int], None]
# Form fields and multipart boundaries around the file in an upload's body.
MULTIPART_SLACK = 64 * 1024


def max_file_bytes() -> int:
    return int(getattr(settings, "OMS_STATEMENT_MAX_BYTES", 50 << 20))


def refuse_oversized(size: int) -> None:
    """Before the file is read (a request's Content-Length) and after (the file's size)."""
    if size > max_file_bytes():
        raise FileTooLarge(f"the file is larger than {max_file_bytes()} bytes (OMS_STATEMENT_MAX_BYTES); "
                           "split it by day or compress it")


def import_statement(
    data: bytes, *, account: str, profile: str | None = None, filename: str = "",
    provider: str = "", user=None, progress: Progress | None = None,
) -> Statement:
    account = require_account(account)
    checksum = hashlib.sha256(data).hexdigest()
    if (earlier := Statement.objects.filter(account=account, checksum=checksum).first()) is not None:
        raise already_imported(earlier)
    try:
        reader = open_statement(data, profile=profile or None, filename=filename)
    except StatementFormatError as exc:
        raise _format_rejected(exc) from None
    channel = _settlement_channel(account) if reader.profile == SETTLEMENT_PROFILE else None
    try:
        with transaction.atomic():
            statement = Statement.objects.create(
                account=account, channel=channel, profile=reader.profile,
                provider=statement_provider(reader.profile, account, provider), filename=filename[:255],
                encoding=reader.encoding, checksum=checksum, size=len(data), imported_by=user,
            )
            _load_rows(statement, reader, channel, progress)
            _reconcile_after_import(statement)
    except IntegrityError:
        # The same file uploaded twice at once: the unique (account, checksum) decided.
        raise already_imported(Statement.objects.get(account=account, checksum=checksum)) from None
    except StatementFormatError as exc:  # the file breaks down past its header (rows are read lazily)
        raise _format_rejected(exc) from None
    return statement


def _format_rejected(exc: StatementFormatError) -> StatementRejected:
    return StatementRejected(str(exc), [_error(exc.row, exc.column, "", str(exc))])


def require_account(account: str) -> str:
    account = account.strip()
    if not account:
        raise StatementRejected("account is required", [_error(0, "account", "", "missing value")])
    return account


def statement_provider(profile: str, account: str, given: str = "") -> str:
    """Whose vouchers the file's lines answer for (see Statement.provider)."""
    if profile in PROFILE_PROVIDERS:
        return PROFILE_PROVIDERS[profile]
    if profile == SETTLEMENT_PROFILE:
        return f"channel:{account}"
    return (given or account).strip()[:40]


def already_imported(earlier: Statement) -> Conflict:
    return Conflict(
        f"this file was already imported for account {earlier.account} "
        f"on {timezone.localtime(earlier.imported_at):%Y-%m-%d %H:%M} (statement {earlier.pk})",
        statement=earlier.pk,
    )


def _settlement_channel(account: str) -> Channel:
    channel = Channel.objects.filter(code=account).first()
    if channel is None:
        raise StatementRejected(
            "a settlement file's account is the channel code",
            [_error(0, "account", account, "no channel has this code")],
        )
    return channel


def _error(row: int, column: str, value: str, reason: str) -> dict:
    return {"row": row, "column": column, "value": value, "reason": reason}


def _load_rows(statement: Statement, reader, channel: Channel | None, progress: Progress | None):
    lag = timedelta(days=channel.settlement_lag_days) if channel else timedelta(0)
    errors: list[dict] = []
    total_in = total_out = Decimal("0")
    first_day = last_day = None
    count = 0
    with _writer(statement) as write:
        for item in reader.rows():
            count += 1
            if progress and count % BATCH == 0:
                progress(count, reader.estimated_rows)
            if isinstance(item, RowError):
                errors.append(_error(item.row, item.column, item.value, item.reason))
                continue
            problem = _too_long(item)
            if problem:
                errors.append(problem)
                continue
            if errors:
                continue  # the file is rejected anyway; keep checking the rest for the report
            day = timezone.localdate(item.occurred_at) - lag
            first_day = day if first_day is None or day < first_day else first_day
            last_day = day if last_day is None or day > last_day else last_day
            if item.amount >= 0:
                total_in += item.amount
            else:
                total_out -= item.amount
            write(_values(statement.pk, item, day))
        if errors:
            raise StatementRejected(f"{len(errors)} bad row(s); nothing was imported", errors)
    if progress:
        progress(count, count)
    period = reader.header_period or (first_day, last_day)
    if period[0] is None:
        raise StatementRejected("the file has no statement lines", [_error(0, "", "", "no lines")])
    Statement.objects.filter(pk=statement.pk).update(
        lines=count,
        period_start=period[0], period_end=period[1], total_in=total_in, total_out=total_out,
    )
    statement.refresh_from_db()


def _too_long(row: StatementRow) -> dict | None:
    for field, limit in LIMITS.items():
        value = getattr(row, field)
        if len(value) > limit:
            return _error(row.row, field, value, f"longer than {limit} characters")
    return None


def _values(statement_id: int, row: StatementRow, day) -> tuple:
    match_key = row.transaction_no
    if row.kind == "refund":
        # A refund shares its trade's number on most bills; its own number is the refund's.
        match_key = row.refund_ref or f"{row.transaction_no}:refund"
    return (statement_id, row.row, row.transaction_no, match_key[:64], row.order_ref,
            row.occurred_at, day, row.amount, row.fee, row.kind[:12], row.counterparty[:128],
            row.memo[:255], row.currency[:3])


class _writer:
    """COPY into PostgreSQL; batched bulk inserts elsewhere (the embedded SQLite default)."""

    def __init__(self, statement: Statement):
        self.statement = statement
        self.batch: list[tuple] = []

    def __enter__(self):
        if connection.vendor == "postgresql":
            self.cursor = connection.cursor()
            columns = ", ".join(COLUMNS)
            self.copy_cm = self.cursor.cursor.copy(
                f"COPY {StatementLine._meta.db_table} ({columns}) FROM STDIN"  # noqa: S608
            )
            self.copy = self.copy_cm.__enter__()
            return self.copy.write_row
        return self._add

    def _add(self, values: tuple):
        self.batch.append(values)
        if len(self.batch) >= BATCH:
            self._flush()

    def _flush(self):
        StatementLine.objects.bulk_create(
            StatementLine(**dict(zip(COLUMNS, values, strict=True))) for values in self.batch
        )
        self.batch = []

    def __exit__(self, exc_type, exc, tb):
        if connection.vendor == "postgresql":
            try:
                self.copy_cm.__exit__(exc_type, exc, tb)
            finally:
                self.cursor.close()
        elif exc_type is None:
            self._flush()
        return False


def _reconcile_after_import(statement: Statement) -> None:
    """WeChat Pay bills exist only after 10:00 the next day: the import itself queues the run
    for the days it covers (in its own transaction, so a broker outage cannot lose it), so
    nobody waits for the next night."""
    if statement.period_end and statement.period_end < timezone.localdate():
        queue_run(statement.period_start, statement.period_end, ReconciliationRun.Trigger.IMPORT)
