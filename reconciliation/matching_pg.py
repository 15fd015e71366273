"""A reconciliation run on PostgreSQL: the same findings as the portable passes in
reconciliation.matching (reconciliation/tests/test_matching_paths.py compares them), with the
work that is proportional to the period's rows done once, in the database, and everything else
proportional to the differences only.

Where the time goes (1M vouchers x 1M lines, ~1% different):
- Classification. One row-level hash full join of the period's vouchers and lines, carrying only
  key, amount and callback delay. A key with one voucher, one line, the same amount and an
  on-time callback is matched and never leaves the join: only the other keys ("unsure", ~2%)
  are classified by the portable CASE, reading their vouchers and lines again through the
  transaction-number indexes. A key with two lines that each look matched is given away by the
  counts (lines with a voucher outnumber vouchers with a line: one more count of the vouchers in
  scope); only then are the period's lines grouped by key to find it.
- Several payments of one order: the period's vouchers grouped by order number (the other big
  read) run on a second connection while the first classifies and writes, when the run owns its
  transaction (a worker, the API, the command). Inside a caller's transaction (tests) a helper
  could not see uncommitted rows, so the same query runs on the run's connection.
- Writing. Findings are upserted by fingerprint as before; matched vouchers and lines are never
  written. Fuzzy suggestions are planned before the write from the unmatched rows only, so a new
  finding is inserted once with its suggestion (an update of a row inserted in the same
  transaction checks all its foreign keys again). History entries, resolutions and suggestions
  of existing findings are set-based statements.
- What is left is the write itself: each new finding checks four foreign keys and fills eleven
  indexes, and its history entry one more key; PostgreSQL checks them row by row at commit.
- Settings for the run's transaction only: no JIT (compiling these plans cost seconds), hash
  tables in memory (work_mem), custom plans for the dates of this run, no parallel workers.
"""

# ruff: noqa: S608 (set-based SQL assembled from module constants; every value is a query parameter)
import threading

from django.db import connection, connections
from django.utils import timezone

from .matching import _PAIRS, DELAYED_CALLBACK_SECONDS, SETTLEMENT_FINDINGS, SUGGEST_WINDOW

FOUND = "reconciliation_run_found"
SUGGEST_LIMIT = 10_000

# For the run's transaction only. No parallel workers: the join's inputs are row streams that a
# Gather ships one tuple at a time for more than the scan saves; the second core is the helper's.
SETTINGS = (
    "SET LOCAL jit = off",
    "SET LOCAL work_mem = '192MB'",
    "SET LOCAL plan_cache_mode = force_custom_plan",
    "SET LOCAL max_parallel_workers_per_gather = 0",
)

# Vouchers matched against statements: the payment side of the ledger (reversals are the
# system's own corrections), of providers with a statement covering the period.
_COVERING_PROVIDERS = """(SELECT provider FROM reconciliation_statement
          WHERE profile <> 'channel_settlement' AND period_start <= %(end)s AND period_end >= %(start)s)"""
_VOUCHER_IN_SCOPE = f"""fv.business_date BETWEEN %(start)s AND %(end)s
      AND fv.kind IN ('payment', 'refund') AND fv.status IN ('confirmed', 'pending_check')
      AND fv.provider IN {_COVERING_PROVIDERS}"""
_LINE_IN_SCOPE = """sl.business_date BETWEEN %(start)s AND %(end)s AND sl.kind IN ('payment', 'refund')
      AND sl.statement_id NOT IN (SELECT id FROM reconciliation_statement WHERE profile = 'channel_settlement')"""

# One pass over both tables. Every line of the period comes in once (counted for the run); only
# those this pass matches carry a key. `unsure`: the keys a matched pair cannot explain.
_MATCHING = f"""
    lines AS (
        SELECT sl.id, sl.amount,
               CASE WHEN sl.kind IN ('payment', 'refund') AND sl.statement_id NOT IN (
                        SELECT id FROM reconciliation_statement WHERE profile = 'channel_settlement')
                    THEN sl.match_key END AS k
        FROM reconciliation_statementline sl
        WHERE sl.business_date BETWEEN %(start)s AND %(end)s
    ),
    vouchers AS (
        SELECT fv.id, fv.transaction_no AS k, fv.amount, fv.callback_delay_seconds AS delay
        FROM reconciliation_fundvoucher fv WHERE {_VOUCHER_IN_SCOPE}
    ),
    matching AS MATERIALIZED (
        SELECT count(l.id) AS lines, count(l.k) AS lines_in_scope,
               count(l.k) FILTER (WHERE v.id IS NULL) AS lines_alone,
               count(v.id) FILTER (WHERE l.id IS NULL) AS vouchers_alone,
               array_agg(COALESCE(v.k, l.k)) FILTER (
                   WHERE (l.k IS NOT NULL AND v.id IS NULL) OR (v.id IS NOT NULL AND l.id IS NULL)
                      OR l.amount <> v.amount OR v.delay > {DELAYED_CALLBACK_SECONDS}) AS unsure
        FROM vouchers v FULL OUTER JOIN lines l ON l.k = v.k
    ),
    -- Vouchers in scope, counted apart from the join: a voucher met by two lines comes out of
    -- the join twice, so more lines with a voucher than vouchers with a line means a key with
    -- several lines that each look matched.
    doubled AS MATERIALIZED (
        SELECT m.lines_in_scope - m.lines_alone > (SELECT count(*) FROM reconciliation_fundvoucher fv
                                                   WHERE {_VOUCHER_IN_SCOPE}) - m.vouchers_alone AS found_twice
        FROM matching m
    ),
    -- One array, unnested: the planner expects a handful of keys and reads their vouchers and
    -- lines through the indexes (a set it expected large would be hash-joined to whole tables).
    keys AS MATERIALIZED (
        SELECT DISTINCT unnest(m.unsure || (
            SELECT array_agg(sl.match_key) FROM (
                SELECT sl.match_key FROM reconciliation_statementline sl
                WHERE (SELECT found_twice FROM doubled) AND {_LINE_IN_SCOPE}
                GROUP BY sl.match_key HAVING COUNT(*) > 1) sl)) AS k
        FROM matching m
    ),
"""

# The portable classification (reconciliation.matching._PAIRS), for the unsure keys only.
_DETAIL = f"""
    v AS (
        SELECT fv.id, fv.transaction_no AS k, fv.order_no, fv.amount, fv.callback_delay_seconds AS delay,
               fv.business_date AS day, COALESCE(c.code, '') AS channel_code
        FROM keys JOIN reconciliation_fundvoucher fv ON fv.transaction_no = keys.k
        LEFT JOIN orders_order o ON o.id = fv.order_id
        LEFT JOIN channels_channel c ON c.id = o.channel_id
        WHERE {_VOUCHER_IN_SCOPE}
    ),
    l AS (
        SELECT sl.match_key AS k, MIN(sl.id) AS line_id, COUNT(*) AS n, SUM(sl.amount) AS amount,
               SUM(sl.fee) AS fee, MIN(sl.business_date) AS day, MIN(sl.order_ref) AS order_ref
        FROM keys JOIN reconciliation_statementline sl ON sl.match_key = keys.k
        WHERE {_LINE_IN_SCOPE}
        GROUP BY sl.match_key
    ),
"""

_COLUMNS = "fingerprint, kind, day, k, order_no, channel_code, expected, actual, voucher_id, line_id"


# The transaction and settlement passes into the run's temporary table: their findings (batch 1,
# with room for a suggested match) and one row of counts (batch 0).
CLASSIFY = f"""
    CREATE TEMP TABLE {FOUND} ON COMMIT DROP AS
    WITH {_MATCHING} {_DETAIL} {_PAIRS}
    SELECT 1 AS batch, kind || ':' || k AS fingerprint, kind, day, k, order_no, channel_code,
           expected, actual, voucher_id, line_id, CAST(NULL AS bigint) AS lines,
           CAST(NULL AS bigint) AS suggested_voucher_id, CAST(NULL AS text) AS note
    FROM pairs WHERE kind IS NOT NULL
    UNION ALL
    SELECT 1, {_COLUMNS}, NULL, NULL, NULL FROM ({SETTLEMENT_FINDINGS}) settled
    UNION ALL
    SELECT 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, lines, NULL, NULL FROM matching
"""


# The period's vouchers by order number: how many (for the run) and which orders were paid more
# than once (booked twice). Read-only: runs on a helper connection where it can.
VOUCHERS_BY_ORDER = """
    SELECT COALESCE(SUM(n), 0), array_agg(order_no) FILTER (WHERE order_no IS NOT NULL AND n > 1)
    FROM (
        SELECT CASE WHEN fv.kind = 'payment' AND fv.status = 'confirmed' AND fv.order_no <> ''
                    THEN fv.order_no END AS order_no, COUNT(*) AS n
        FROM reconciliation_fundvoucher fv
        WHERE fv.business_date BETWEEN %(start)s AND %(end)s AND fv.kind IN ('payment', 'refund')
        GROUP BY 1
    ) per_order
"""

# The orders paid twice, as the portable pass reports them (read through the order-number index).
_PAID_TWICE = """
    SELECT 2, 'duplicate_notification:order:' || fv.order_no, 'duplicate_notification',
           MIN(fv.business_date), MAX(fv.transaction_no), fv.order_no, MAX(COALESCE(c.code, '')),
           MIN(fv.amount), SUM(fv.amount), MIN(fv.id), CAST(NULL AS bigint), CAST(NULL AS bigint)
    FROM reconciliation_fundvoucher fv
    LEFT JOIN orders_order o ON o.id = fv.order_id
    LEFT JOIN channels_channel c ON c.id = o.channel_id
    WHERE fv.order_no = ANY(%(paid_twice)s) AND fv.business_date BETWEEN %(start)s AND %(end)s
      AND fv.kind = 'payment' AND fv.status = 'confirmed' AND fv.order_no <> ''
    GROUP BY fv.order_no
"""


# Orders paid twice, into the temporary table as batch 2.
MORE_FINDINGS = f"""
    INSERT INTO {FOUND} (batch, {_COLUMNS}, lines)
    {_PAID_TWICE}
"""


# Upserted by fingerprint as before (a re-run updates what it found before). A new finding is
# written once, its suggested match (if any) included, and gets its first history entry in the
# same statement (SUGGESTED_NEW adds the second). New findings are inserted in (day, fingerprint) order, the
# order plan_suggestions assumes for their ids. Returns, per kind, how many and how many of
# them disagree with a statement line (a fee or a late callback still matched the money).
UPSERT = f"""
    WITH upserted AS (
        INSERT INTO reconciliation_discrepancy
            (fingerprint, kind, status, business_date, transaction_no, order_no, channel_code,
             expected, actual, difference, voucher_id, statement_line_id, suggested_voucher_id,
             first_run_id, last_run_id, detail, created_at, updated_at)
        SELECT fingerprint, kind,
               CASE WHEN suggested_voucher_id IS NULL THEN 'open' ELSE 'pending_confirmation' END,
               day, k, order_no, channel_code, expected, actual,
               COALESCE(actual, 0) - COALESCE(expected, 0), voucher_id, line_id, suggested_voucher_id,
               %(run)s, %(run)s, '', %(now)s, %(now)s
        FROM {FOUND} WHERE batch = %(batch)s
        ORDER BY day, fingerprint
        ON CONFLICT (fingerprint) DO UPDATE SET
            last_run_id = excluded.last_run_id, expected = excluded.expected,
            actual = excluded.actual, difference = excluded.difference,
            statement_line_id = excluded.statement_line_id, updated_at = excluded.updated_at
        RETURNING id, kind, first_run_id, statement_line_id
    ),
    noted AS (
        INSERT INTO reconciliation_discrepancyevent (discrepancy_id, at, from_status, to_status, assignee, note)
        SELECT id, %(now)s, '', 'open', '', %(note)s FROM upserted WHERE first_run_id = %(run)s
        ORDER BY id
    )
    SELECT kind, COUNT(*),
           COUNT(*) FILTER (WHERE statement_line_id IS NOT NULL
                              AND kind NOT IN ('fee_deduction', 'delayed_callback'))
    FROM upserted GROUP BY kind
"""

# Open findings of the period that this run no longer sees: resolved, the reason in their history.
RESOLVE_CLEARED = """
    WITH cleared AS (
        UPDATE reconciliation_discrepancy d SET status = 'resolved', updated_at = %(now)s
        WHERE d.business_date BETWEEN %(start)s AND %(end)s AND d.status = 'open'
          AND d.last_run_id IS NOT NULL AND d.last_run_id <> %(run)s
        RETURNING d.id
    )
    INSERT INTO reconciliation_discrepancyevent (discrepancy_id, at, from_status, to_status, assignee, note)
    SELECT id, %(now)s, 'open', 'resolved', '', %(note)s FROM cleared ORDER BY id
"""

# Fuzzy suggestions (reconciliation.matching._suggest_matches) for the run's unmatched rows
# only: lines without a voucher and vouchers without a line, each side in the order and up to
# the limit the portable step reads them (business day, then id, newest first; a new finding's
# id is to come, after every existing one, in (day, fingerprint) order). Planned before the
# write, so that a new finding is inserted with its suggestion instead of inserted and then
# updated (which would check its foreign keys twice); an existing one is updated as before.
# Matched in Python: a join of the two sets would be planned on statistics the run just made.
# (OFFSET 0 keeps each lookup an index probe per finding: joined, the big tables would be
# hashed whole for a few thousand rows.)
SUGGESTION_SIDES = f"""
    SELECT f.fingerprint, f.kind, COALESCE(d.business_date, f.day), d.id, d.status,
           d.suggested_voucher_id, sl.amount, sl.occurred_at, sl.order_ref,
           fv.id, fv.transaction_no, fv.amount, fv.occurred_at, fv.order_no
    FROM {FOUND} f
    LEFT JOIN LATERAL (
        SELECT id, business_date, status, suggested_voucher_id, voucher_id
        FROM reconciliation_discrepancy WHERE fingerprint = f.fingerprint OFFSET 0) d ON true
    LEFT JOIN LATERAL (
        SELECT amount, occurred_at, order_ref FROM reconciliation_statementline
        WHERE f.kind = 'missing_in_system' AND id = f.line_id OFFSET 0) sl ON true
    LEFT JOIN LATERAL (
        SELECT id, transaction_no, amount, occurred_at, order_no FROM reconciliation_fundvoucher
        WHERE f.kind = 'missing_in_statement' AND id = COALESCE(d.voucher_id, f.voucher_id) OFFSET 0) fv ON true
    WHERE f.batch = 1 AND f.kind IN ('missing_in_system', 'missing_in_statement')
"""
SUGGEST_NEW = f"""
    UPDATE {FOUND} f SET suggested_voucher_id = p.voucher_id, note = p.note
    FROM unnest(%(fingerprints)s::text[], %(vouchers)s::bigint[], %(notes)s::text[])
        AS p(fingerprint, voucher_id, note)
    WHERE f.batch = 1 AND f.fingerprint = p.fingerprint
"""
# The second history entry of new findings inserted with a suggestion.
SUGGESTED_NEW = f"""
    INSERT INTO reconciliation_discrepancyevent (discrepancy_id, at, from_status, to_status, assignee, note)
    SELECT d.id, %(now)s, 'open', 'pending_confirmation', '', f.note
    FROM {FOUND} f
    JOIN LATERAL (SELECT id FROM reconciliation_discrepancy WHERE fingerprint = f.fingerprint OFFSET 0) d ON true
    WHERE f.batch = 1 AND f.note IS NOT NULL
    ORDER BY d.id
"""
SUGGEST_EXISTING = """
    WITH picked AS (
        SELECT * FROM unnest(%(ids)s::bigint[], %(vouchers)s::bigint[], %(notes)s::text[])
            WITH ORDINALITY AS p(id, voucher_id, note, position)
    ),
    suggested AS (
        UPDATE reconciliation_discrepancy d
        SET suggested_voucher_id = p.voucher_id, status = 'pending_confirmation'
        FROM picked p WHERE d.id = p.id
    )
    INSERT INTO reconciliation_discrepancyevent (discrepancy_id, at, from_status, to_status, assignee, note)
    SELECT id, %(now)s, 'open', 'pending_confirmation', '', note FROM picked ORDER BY position
"""


def plan_suggestions(cursor) -> list[tuple[int, int, str]]:
    """Suggestions for new findings go into the temporary table; those for existing findings
    are returned as (discrepancy id, voucher id, note), to be updated after the write."""
    cursor.execute(SUGGESTION_SIDES)
    lines, candidates = [], []
    for (fingerprint, kind, day, existing, status, suggested, line_amount, line_at, order_ref,
         voucher, transaction_no, amount, voucher_at, order_no) in cursor.fetchall():
        newest_first = (day, 0, existing) if existing else (day, 1, fingerprint)
        if kind == "missing_in_system":
            if line_amount is not None and (existing is None or (status == "open" and suggested is None)):
                lines.append((newest_first, fingerprint, existing, line_amount, line_at, order_ref))
        elif voucher is not None:
            candidates.append((newest_first, voucher, transaction_no, amount, voucher_at, order_no))
    lines.sort(key=lambda side: side[0], reverse=True)
    candidates.sort(key=lambda side: side[0], reverse=True)
    by_amount: dict = {}
    for candidate in candidates[:SUGGEST_LIMIT]:
        by_amount.setdefault(candidate[3], []).append(candidate)
    new, existing_rows = ([], [], []), []
    for _order, fingerprint, existing, amount, line_at, order_ref in lines[:SUGGEST_LIMIT]:
        fragment = order_ref[-4:]
        if len(fragment) != 4:
            continue
        for _o, voucher, transaction_no, _amount, voucher_at, order_no in by_amount.get(amount, ()):
            if abs(voucher_at - line_at) <= SUGGEST_WINDOW and order_no.endswith(fragment):
                note = (f"suggested match: voucher {transaction_no} "
                        f"(same amount, order number ends {fragment})")
                if existing is None:
                    for column, value in zip(new, (fingerprint, voucher, note), strict=True):
                        column.append(value)
                else:
                    existing_rows.append((existing, voucher, note))
                break
    if new[0]:
        cursor.execute(SUGGEST_NEW, {"fingerprints": new[0], "vouchers": new[1], "notes": new[2]})
    return existing_rows


class VoucherTotals(threading.Thread):
    """VOUCHERS_BY_ORDER on a connection of its own, while the run's connection writes."""

    def __init__(self, params: dict):
        super().__init__(name="reconciliation-vouchers-by-order", daemon=True)
        self.params = params
        self.result = None
        self.error = None

    def run(self) -> None:
        helper = connections.create_connection(connection.alias)
        try:
            with helper.cursor() as cursor:
                cursor.execute("SET application_name = 'oms reconciliation helper'")
                cursor.execute("SET jit = off")
                cursor.execute("SET work_mem = '192MB'")
                cursor.execute(VOUCHERS_BY_ORDER, self.params)
                self.result = cursor.fetchone()
        except BaseException as exc:  # handed to the run's thread, which raises it
            self.error = exc
        finally:
            helper.close()

    def totals(self) -> tuple[int, list[str] | None]:
        self.join()
        if self.error is not None:
            raise self.error
        return self.result


def reconcile(run_pk: int, params: dict, own_transaction: bool) -> dict:
    """The run's passes on the run's connection, inside its transaction. Returns the run's
    counts: by kind, vouchers, statement lines, and lines that disagree with the system."""
    counts: dict[str, int] = {}
    disagreeing = 0

    def write(cursor, batch: int) -> None:
        nonlocal disagreeing
        cursor.execute(UPSERT, {**params, "batch": batch, "now": timezone.now(),
                                "note": f"found by reconciliation run {run_pk}"})
        for kind, n, disagree in cursor.fetchall():
            counts[kind] = counts.get(kind, 0) + n
            disagreeing += disagree

    with connection.cursor() as cursor:
        for setting in SETTINGS:
            cursor.execute(setting)
        helper = None
        if own_transaction:
            # Committed rows only: a helper cannot see what a caller's transaction wrote.
            helper = VoucherTotals(params)
            helper.start()
        try:
            cursor.execute(CLASSIFY, params)
            cursor.execute(f"ANALYZE {FOUND}")
            cursor.execute(f"SELECT lines FROM {FOUND} WHERE batch = 0")
            (lines,) = cursor.fetchone()
            suggested = plan_suggestions(cursor)
            write(cursor, 1)
            cursor.execute(SUGGESTED_NEW, {"now": timezone.now()})
            if helper is not None:
                vouchers, paid_twice = helper.totals()
            else:
                cursor.execute(VOUCHERS_BY_ORDER, params)
                vouchers, paid_twice = cursor.fetchone()
        finally:
            if helper is not None and helper.is_alive():
                helper.join()
        cursor.execute(MORE_FINDINGS, {**params, "paid_twice": paid_twice or []})
        write(cursor, 2)
        cursor.execute(RESOLVE_CLEARED, {**params, "now": timezone.now(),
                                         "note": f"no longer found by reconciliation run {run_pk}"})
        if suggested:
            ids, vouchers_suggested, notes = zip(*suggested, strict=True)
            cursor.execute(SUGGEST_EXISTING, {"ids": list(ids), "vouchers": list(vouchers_suggested),
                                              "notes": list(notes), "now": timezone.now()})
        cursor.execute(f"DROP TABLE {FOUND}")  # a second run in the same transaction (tests)
    return {"counts": counts, "vouchers": vouchers, "lines": lines, "disagreeing": disagreeing}
