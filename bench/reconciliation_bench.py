"""Issue 6 benchmark on PostgreSQL: import a 1,000,000-line statement, then reconcile
1,000,000 vouchers against 1,000,000 statement lines.

Targets: import <= 30 s; reconcile <= 15 s with <= 1 GB resident memory (this process; the
work is set-based in the database). The file is the generic CSV profile; about 1% of the rows
differ (amount mismatches, lines without a voucher, vouchers without a line, fees).
"""

import os
import resource
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

from bench.common import ROOT, print_table, setup_django

LINES = int(os.environ.get("OMS_BENCH_STATEMENT_LINES", "1000000"))
PROVIDER = "benchpay"


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        # TRUNCATE fires no row triggers: the append-only ledgers refuse DELETE, not a wipe of
        # the whole bench database.
        cursor.execute(
            "TRUNCATE reconciliation_discrepancyevent, reconciliation_discrepancy, "
            "reconciliation_paymentmatch, reconciliation_statementline, reconciliation_statement, "
            "reconciliation_reconciliationrun, reconciliation_fundvoucher CASCADE"
        )


def write_file(path: Path, day, salt: str) -> dict:
    """Rows i = 0..LINES-1; every 200th row differs in one of four ways."""
    start = datetime.combine(day, datetime.min.time())
    counts = {"mismatch": 0, "fee": 0, "line_only": 0, "voucher_only": 0}
    with path.open("w", encoding="utf-8") as out:
        out.write("transaction_no,order_no,amount,occurred_at,fee,kind\n")
        for i in range(LINES):
            amount = f"{(i % 5000) + 1}.{i % 100:02d}"
            fee = "0.00"
            tx = f"{salt}{i:09d}"
            variant = i % 200
            if variant == 1:
                counts["mismatch"] += 1
                amount = f"{(i % 5000) + 1}.{(i + 1) % 100:02d}" if i % 100 != 99 else f"{(i % 5000) + 2}.00"
            elif variant == 2:
                counts["line_only"] += 1
                tx = f"{salt}X{i:09d}"
            elif variant == 3:
                counts["voucher_only"] += 1
                continue
            at = start + timedelta(seconds=i % 86000)
            out.write(f"{tx},MP{i:012d},{amount},{at:%Y-%m-%d %H:%M:%S},{fee},payment\n")
    return counts


def load_vouchers(day, salt: str) -> None:
    """One voucher per row index, straight through COPY: setup, not what is measured."""
    from django.db import connection
    from django.utils import timezone

    tz = timezone.get_current_timezone()
    start = datetime.combine(day, datetime.min.time(), tz)
    now = timezone.now()
    columns = ("transaction_no, provider, order_no, kind, amount, currency, occurred_at, "
               "business_date, received_at, callback_delay_seconds, status, check_reason, "
               "reason, raw")
    with connection.cursor() as cursor, cursor.cursor.copy(
        f"COPY reconciliation_fundvoucher ({columns}) FROM STDIN"
    ) as copy:
        for i in range(LINES):
            amount = f"{(i % 5000) + 1}.{i % 100:02d}"
            copy.write_row((f"{salt}{i:09d}", PROVIDER, f"MP{i:012d}", "payment", amount, "CNY",
                            start + timedelta(seconds=i % 86000), day, now, 3, "confirmed", "", "",
                            "{}"))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE reconciliation_fundvoucher")


def main() -> None:
    setup_django()
    from django.db import connection
    from django.utils import timezone

    from reconciliation.importing import import_statement
    from reconciliation.matching import run_reconciliation

    reset()
    day = timezone.localdate()  # today: the import starts no automatic run of its own
    salt = uuid.uuid4().hex[:6].upper()
    path = ROOT / "var" / "bench" / f"statement-{LINES}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    counts = write_file(path, day, salt)
    data = path.read_bytes()
    load_vouchers(day, salt)

    started = time.perf_counter()
    statement = import_statement(data, account="bench-account", provider=PROVIDER,
                                 filename=path.name)
    import_seconds = time.perf_counter() - started
    import_rss = rss_mb()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE reconciliation_statementline")

    started = time.perf_counter()
    run = run_reconciliation(day, day)
    reconcile_seconds = time.perf_counter() - started
    started = time.perf_counter()
    rerun = run_reconciliation(day, day)
    rerun_seconds = time.perf_counter() - started

    expected = {"amount_mismatch": counts["mismatch"], "missing_in_system": counts["line_only"],
                "missing_in_statement": counts["voucher_only"] + counts["line_only"]}
    found = {k: run.counts.get(k, 0) for k in expected}
    print_table(f"Issue 6: statements and reconciliation ({LINES:,} lines, PostgreSQL)", [
        {"step": "import statement (generic CSV)", "rows": f"{statement.lines:,}",
         "seconds": f"{import_seconds:.1f}", "rows/s": f"{statement.lines / import_seconds:,.0f}",
         "max RSS MB": f"{import_rss:.0f}", "target": "<= 30 s"},
        {"step": "reconcile vouchers x lines", "rows": f"{run.vouchers:,} x {run.statement_lines:,}",
         "seconds": f"{reconcile_seconds:.1f}", "rows/s": f"{run.statement_lines / reconcile_seconds:,.0f}",
         "max RSS MB": f"{rss_mb():.0f}", "target": "<= 15 s, <= 1 GB"},
        {"step": "re-run the same day", "rows": f"{sum(rerun.counts.values()):,} findings",
         "seconds": f"{rerun_seconds:.1f}", "rows/s": "", "max RSS MB": f"{rss_mb():.0f}",
         "target": "same counts"},
    ])
    print(f"findings: {found} (expected {expected}); matched {run.matched:,}; "
          f"re-run identical: {rerun.counts == run.counts}")


if __name__ == "__main__":
    main()
