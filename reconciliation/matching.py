"""Reconciliation runs, set-based in the database: one statement per pass, not a loop per row.

Two passes over a period of business days:
- transactions: fund vouchers against payment-provider statement lines, by transaction number
  (the refund number for refunds);
- settlements: a channel's T+1 settlement lines against that channel's orders, by the
  channel's order id.
Each finding is upserted by its fingerprint (kind + key), so a re-run of a period updates what
it found before instead of listing it twice, and an open finding that is no longer found is
resolved with a note in its history.
"""

from datetime import date, datetime, time, timedelta

from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone

from oms.queueing import enqueue_on_commit

from .models import (
    Discrepancy,
    DiscrepancyEvent,
    DiscrepancyKind,
    DiscrepancyStatus,
    FundVoucher,
    ReconciliationRun,
    Statement,
    StatementLine,
)

# A callback later than this after the payment is reported as delayed.
DELAYED_CALLBACK_SECONDS = 30 * 60
SUGGEST_WINDOW = timedelta(minutes=15)
TRANSACTION_KINDS = [k.value for k in DiscrepancyKind]
RUN_TASK = "reconciliation.run_queued"

# Only the payment side of the voucher ledger meets statements; reversals are the system's own
# corrections and reversed vouchers are netted out by them.
_VOUCHERS = """
    SELECT fv.id, fv.transaction_no AS k, fv.order_no, fv.amount, fv.callback_delay_seconds AS delay,
           fv.business_date AS day, COALESCE(c.code, '') AS channel_code
    FROM reconciliation_fundvoucher fv
    LEFT JOIN orders_order o ON o.id = fv.order_id
    LEFT JOIN channels_channel c ON c.id = o.channel_id
    WHERE fv.business_date BETWEEN %(start)s AND %(end)s
      AND fv.kind IN ('payment', 'refund') AND fv.status IN ('confirmed', 'pending_check')
      AND fv.provider IN (SELECT provider FROM covering)
"""

_LINES = """
    SELECT sl.match_key AS k, MIN(sl.id) AS line_id, COUNT(*) AS n, SUM(sl.amount) AS amount,
           SUM(sl.fee) AS fee, MIN(sl.business_date) AS day, MIN(sl.order_ref) AS order_ref
    FROM reconciliation_statementline sl
    JOIN reconciliation_statement st ON st.id = sl.statement_id
    WHERE sl.business_date BETWEEN %(start)s AND %(end)s AND st.profile <> 'channel_settlement'
      AND sl.kind IN ('payment', 'refund')
    GROUP BY sl.match_key
"""

_COVERING = """
    SELECT DISTINCT provider FROM reconciliation_statement
    WHERE profile <> 'channel_settlement' AND period_start <= %(end)s AND period_end >= %(start)s
"""

_TRANSACTION_FINDINGS = f"""
    WITH covering AS ({_COVERING}), v AS ({_VOUCHERS}), l AS ({_LINES}),
    pairs AS (
        SELECT COALESCE(v.k, l.k) AS k, v.id AS voucher_id, l.line_id, v.amount AS expected,
               l.amount AS actual, COALESCE(v.day, l.day) AS day,
               COALESCE(v.order_no, l.order_ref, '') AS order_no,
               COALESCE(v.channel_code, '') AS channel_code,
               CASE
                 WHEN l.k IS NULL THEN 'missing_in_statement'
                 WHEN v.k IS NULL THEN CASE
                     WHEN EXISTS (SELECT 1 FROM reconciliation_fundvoucher other
                                  WHERE other.transaction_no = l.k) THEN 'delayed_callback'
                     WHEN l.amount < 0 THEN 'unmatched_refund'
                     ELSE 'missing_in_system' END
                 WHEN l.n > 1 THEN 'duplicate_notification'
                 WHEN l.amount = v.amount THEN CASE
                     WHEN v.delay > {DELAYED_CALLBACK_SECONDS} THEN 'delayed_callback' END
                 WHEN l.fee > 0 AND l.amount = v.amount - l.fee THEN 'fee_deduction'
                 ELSE 'amount_mismatch'
               END AS kind
        FROM v FULL OUTER JOIN l ON l.k = v.k
    )
"""

# Several confirmed payments of one order: booked more than once.
_DUPLICATE_PAYMENTS = """
    SELECT 'duplicate_notification:order:' || fv.order_no AS fingerprint,
           'duplicate_notification' AS kind, MIN(fv.business_date) AS day,
           MAX(fv.transaction_no) AS k, fv.order_no, MAX(COALESCE(c.code, '')) AS channel_code,
           MIN(fv.amount) AS expected, SUM(fv.amount) AS actual, MIN(fv.id) AS voucher_id,
           CAST(NULL AS bigint) AS line_id
    FROM reconciliation_fundvoucher fv
    LEFT JOIN orders_order o ON o.id = fv.order_id
    LEFT JOIN channels_channel c ON c.id = o.channel_id
    WHERE fv.business_date BETWEEN %(start)s AND %(end)s AND fv.kind = 'payment'
      AND fv.status = 'confirmed' AND fv.order_no <> ''
    GROUP BY fv.order_no HAVING COUNT(*) > 1
"""

_SETTLEMENT_FINDINGS = """
    WITH l AS (
        SELECT st.channel_id, sl.order_ref, MIN(sl.id) AS line_id, SUM(sl.amount) AS amount,
               SUM(sl.fee) AS fee, MIN(sl.business_date) AS day
        FROM reconciliation_statementline sl
        JOIN reconciliation_statement st ON st.id = sl.statement_id
        WHERE st.profile = 'channel_settlement' AND sl.business_date BETWEEN %(start)s AND %(end)s
        GROUP BY st.channel_id, sl.order_ref
    ),
    covered AS (
        SELECT DISTINCT channel_id FROM reconciliation_statement
        WHERE profile = 'channel_settlement' AND period_start <= %(end)s AND period_end >= %(start)s
    ),
    o AS (
        SELECT o.id, o.order_no, o.external_order_id, o.channel_id, o.payable_amount, o.paid_at
        FROM orders_order o
        WHERE o.channel_id IN (SELECT channel_id FROM covered)
          AND o.paid_at >= %(day_start)s AND o.paid_at < %(day_end)s
          AND o.status NOT IN ('cancelled', 'refunded', 'pending_payment')
    ),
    pairs AS (
        SELECT COALESCE(l.order_ref, o.external_order_id) AS k,
               COALESCE(l.channel_id, o.channel_id) AS channel_id, l.line_id,
               o.order_no AS known_order_no, o.payable_amount AS expected, l.amount AS actual,
               l.day AS line_day, l.fee,
               CASE
                 WHEN l.order_ref IS NULL THEN 'missing_in_statement'
                 WHEN o.id IS NULL THEN CASE
                     WHEN EXISTS (SELECT 1 FROM orders_order late
                                  WHERE late.channel_id = l.channel_id
                                    AND late.external_order_id = l.order_ref) THEN NULL
                     WHEN l.amount < 0 THEN 'unmatched_refund'
                     ELSE 'missing_in_system' END
                 WHEN l.amount = o.payable_amount THEN NULL
                 WHEN l.fee > 0 AND l.amount = o.payable_amount - l.fee THEN 'fee_deduction'
                 ELSE 'amount_mismatch'
               END AS kind
        FROM o FULL OUTER JOIN l ON l.channel_id = o.channel_id AND l.order_ref = o.external_order_id
    )
"""

_UPSERT = """
    INSERT INTO reconciliation_discrepancy
        (fingerprint, kind, status, business_date, transaction_no, order_no, channel_code,
         expected, actual, difference, voucher_id, statement_line_id, first_run_id, last_run_id,
         detail, created_at, updated_at)
    SELECT fingerprint, kind, 'open', day, k, order_no, channel_code, expected, actual,
           COALESCE(actual, 0) - COALESCE(expected, 0), voucher_id, line_id,
           %(run)s, %(run)s, '', %(now)s, %(now)s
    FROM findings WHERE kind IS NOT NULL
    ON CONFLICT (fingerprint) DO UPDATE SET
        last_run_id = excluded.last_run_id, expected = excluded.expected,
        actual = excluded.actual, difference = excluded.difference,
        statement_line_id = excluded.statement_line_id, updated_at = excluded.updated_at
"""

# Built from the constants above only; every value arrives as a query parameter.
TRANSACTION_PASS = (
    _TRANSACTION_FINDINGS
    + ", findings AS (SELECT kind || ':' || k AS fingerprint, kind, day, k, order_no,"
    " channel_code, expected, actual, voucher_id, line_id FROM pairs"
    f" UNION ALL {_DUPLICATE_PAYMENTS})"
    + _UPSERT
)
SETTLEMENT_PASS = (
    _SETTLEMENT_FINDINGS
    + ", findings AS (SELECT 'settlement:' || p.kind || ':' || c.code || ':' || p.k AS fingerprint,"
    " p.kind, COALESCE(p.line_day, %(start)s) AS day, p.k,"
    " COALESCE(p.known_order_no, p.k) AS order_no, c.code AS channel_code, p.expected,"
    " p.actual, CAST(NULL AS bigint) AS voucher_id, p.line_id"
    " FROM pairs p JOIN channels_channel c ON c.id = p.channel_id)"
    + _UPSERT
)


def run_reconciliation(
    start: date, end: date, trigger: str = ReconciliationRun.Trigger.MANUAL, user=None
) -> ReconciliationRun:
    if end < start:
        raise ValueError("the period ends before it starts")
    run = ReconciliationRun.objects.create(
        period_start=start, period_end=end, trigger=trigger, started_by=user
    )
    return execute_run(run)


def queue_run(start: date, end: date, trigger: str, user=None, attempt: int = 1) -> ReconciliationRun:
    """A run for a worker: the row is written in the caller's transaction, the message after
    its commit (a broker outage leaves the row for the sweep, see reconciliation.jobs)."""
    run = ReconciliationRun.objects.create(period_start=start, period_end=end, trigger=trigger,
                                           started_by=user, state=ReconciliationRun.State.QUEUED, attempt=attempt)
    enqueue_on_commit(RUN_TASK, run.pk)
    return run


def run_queued(run_id: int) -> ReconciliationRun | None:
    """Claim a queued run and reconcile it; None when another worker already took it."""
    claimed = ReconciliationRun.objects.filter(pk=run_id, state=ReconciliationRun.State.QUEUED).update(
        state=ReconciliationRun.State.RUNNING, started_at=timezone.now())
    return execute_run(ReconciliationRun.objects.get(pk=run_id)) if claimed else None


def execute_run(run: ReconciliationRun) -> ReconciliationRun:
    """Reconcile a run row already marked running (created so, or claimed from the queue)."""
    try:
        _reconcile(run)
    except Exception as exc:
        ReconciliationRun.objects.filter(pk=run.pk).update(
            state=ReconciliationRun.State.FAILED, error=str(exc)[:2000], finished_at=timezone.now()
        )
        raise
    run.refresh_from_db()
    return run


@transaction.atomic
def _reconcile(run: ReconciliationRun) -> None:
    # The run row stays locked until the run commits: a sweep that can lock a "running" run
    # knows its worker is gone (reconciliation.runs.sweep_runs).
    ReconciliationRun.objects.select_for_update().only("pk").get(pk=run.pk)
    tz = timezone.get_current_timezone()
    params = {
        "start": run.period_start, "end": run.period_end, "run": run.pk, "now": timezone.now(),
        "day_start": datetime.combine(run.period_start, time.min, tz),
        "day_end": datetime.combine(run.period_end + timedelta(days=1), time.min, tz),
    }
    with connection.cursor() as cursor:
        cursor.execute(TRANSACTION_PASS, params)
        cursor.execute(SETTLEMENT_PASS, params)
    _record_new_findings(run)
    _resolve_cleared(run)
    _suggest_matches(run)
    _finish(run)


def _record_new_findings(run: ReconciliationRun) -> None:
    new = Discrepancy.objects.filter(first_run=run).values_list("id", flat=True).iterator(chunk_size=5000)
    batch = []
    for discrepancy_id in new:
        batch.append(DiscrepancyEvent(discrepancy_id=discrepancy_id, to_status=DiscrepancyStatus.OPEN,
                                      note=f"found by reconciliation run {run.pk}"))
        if len(batch) >= 5000:
            DiscrepancyEvent.objects.bulk_create(batch)
            batch = []
    DiscrepancyEvent.objects.bulk_create(batch)


def _resolve_cleared(run: ReconciliationRun) -> None:
    """Open findings of the period that this run no longer sees: the statement arrived, the
    callback came, the order was linked. Resolved, with the reason in their history."""
    cleared = Discrepancy.objects.filter(
        business_date__range=(run.period_start, run.period_end),
        status=DiscrepancyStatus.OPEN, last_run__isnull=False,
    ).exclude(last_run=run)
    ids = list(cleared.values_list("id", flat=True))
    Discrepancy.objects.filter(id__in=ids).update(
        status=DiscrepancyStatus.RESOLVED, updated_at=timezone.now()
    )
    DiscrepancyEvent.objects.bulk_create(
        DiscrepancyEvent(discrepancy_id=pk, from_status=DiscrepancyStatus.OPEN,
                         to_status=DiscrepancyStatus.RESOLVED,
                         note=f"no longer found by reconciliation run {run.pk}")
        for pk in ids
    )


def _suggest_matches(run: ReconciliationRun, limit: int = 10_000) -> None:
    """A statement line without a voucher and a voucher without a line may be one payment under
    two numbers: same amount, within 15 minutes, the same last four digits of the order number.
    Suggested, never linked: finance confirms or rejects (pending confirmation)."""
    lines = list(Discrepancy.objects.filter(
        last_run=run, kind=DiscrepancyKind.MISSING_IN_SYSTEM, status=DiscrepancyStatus.OPEN,
        suggested_voucher__isnull=True, statement_line__isnull=False,
    ).select_related("statement_line")[:limit])
    if not lines:
        return
    candidates: dict = {}
    for found in Discrepancy.objects.filter(
        last_run=run, kind=DiscrepancyKind.MISSING_IN_STATEMENT, voucher__isnull=False,
    ).select_related("voucher")[:limit]:
        candidates.setdefault(found.voucher.amount, []).append(found.voucher)
    suggested = []
    for found in lines:
        line = found.statement_line
        for voucher in candidates.get(line.amount, []):
            close_in_time = abs(voucher.occurred_at - line.occurred_at) <= SUGGEST_WINDOW
            fragment = line.order_ref[-4:]
            if close_in_time and len(fragment) == 4 and voucher.order_no.endswith(fragment):
                found.suggested_voucher = voucher
                found.status = DiscrepancyStatus.PENDING_CONFIRMATION
                suggested.append(found)
                break
    Discrepancy.objects.bulk_update(suggested, ["suggested_voucher", "status"])
    DiscrepancyEvent.objects.bulk_create(
        DiscrepancyEvent(discrepancy=found, from_status=DiscrepancyStatus.OPEN,
                         to_status=DiscrepancyStatus.PENDING_CONFIRMATION,
                         note=f"suggested match: voucher {found.suggested_voucher.transaction_no} "
                              f"(same amount, order number ends {found.statement_line.order_ref[-4:]})")
        for found in suggested
    )


def _finish(run: ReconciliationRun) -> None:
    found = Discrepancy.objects.filter(last_run=run)
    counts = {kind: 0 for kind in TRANSACTION_KINDS}
    for row in found.values("kind").order_by().annotate(n=Count("id")):
        counts[row["kind"]] = row["n"]
    vouchers = FundVoucher.objects.filter(
        business_date__range=(run.period_start, run.period_end), kind__in=["payment", "refund"]
    ).count()
    lines = StatementLine.objects.filter(
        business_date__range=(run.period_start, run.period_end)
    ).count()
    # Lines that disagree with the system; a fee or a late callback still matched the money.
    disagreeing = found.filter(statement_line__isnull=False).exclude(
        kind__in=[DiscrepancyKind.FEE_DEDUCTION, DiscrepancyKind.DELAYED_CALLBACK]
    ).count()
    ReconciliationRun.objects.filter(pk=run.pk).update(
        state=ReconciliationRun.State.DONE, counts=counts, vouchers=vouchers,
        statement_lines=lines, matched=max(0, lines - disagreeing),
        finished_at=timezone.now(),
    )


def covering_statements(start: date, end: date):
    return Statement.objects.filter(period_start__lte=end, period_end__gte=start)
