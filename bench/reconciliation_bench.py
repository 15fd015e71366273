"""Issues 6 and 16 benchmark on PostgreSQL: import a 1,000,000-line statement, then reconcile
1,000,000 vouchers against it, beside what the machine does in the same run.

Targets: import <= 30 s; reconcile 1M x 1M <= 3 s end to end and faster than pandas classifying
the same files. The file is the generic CSV profile; about 1% of the rows differ (amount
mismatches, lines without a voucher, vouchers without a line).

Every timed step is printed beside the same-run ceiling measured just before it: the plain SQL
full join of the two tables (`SELECT count(*) ... FULL JOIN ...`, no JIT, the run's work_mem),
so a figure reads as a multiple of what this machine does at that moment. Memory is reported
per process: this Python process's peak during the step (not since start), and the peak of
each PostgreSQL backend of the bench database during the step (the run's connection and its
helper), resident and private (anonymous: work_mem, hash tables) apart.

pandas is optional (not a dependency of the project): where it imports, the same classification
runs on the same two CSV files (statement and vouchers), read included; elsewhere its row says
so. OMS_BENCH_PORTABLE=1 also times the portable passes (the code before issue 16) on the same
data.
"""

import os
import threading
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

from bench.common import BENCH_DB, PG, ROOT, print_table, setup_django

LINES = int(os.environ.get("OMS_BENCH_STATEMENT_LINES", "1000000"))
PROVIDER = "benchpay"
DELAYED_CALLBACK_SECONDS = 30 * 60
CEILING_SQL = ("SELECT count(*) FROM reconciliation_fundvoucher v "
               "FULL JOIN reconciliation_statementline l ON l.match_key = v.transaction_no")


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


def forget_findings() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE reconciliation_discrepancyevent, reconciliation_discrepancy CASCADE")


def amount_of(i: int) -> str:
    return f"{(i % 5000) + 1}.{i % 100:02d}"


def write_files(statement: Path, vouchers: Path, day, salt: str) -> dict:
    """Rows i = 0..LINES-1; every 200th row differs in one of three ways. One voucher per row
    index, in a file of its own (what pandas reads; the database gets the same rows by COPY)."""
    start = datetime.combine(day, datetime.min.time())
    counts = {"mismatch": 0, "line_only": 0, "voucher_only": 0}
    with statement.open("w", encoding="utf-8") as out, vouchers.open("w", encoding="utf-8") as vout:
        out.write("transaction_no,order_no,amount,occurred_at,fee,kind\n")
        vout.write("transaction_no,order_no,amount,occurred_at,callback_delay_seconds\n")
        for i in range(LINES):
            amount = amount_of(i)
            at = start + timedelta(seconds=i % 86000)
            vout.write(f"{salt}{i:09d},MP{i:012d},{amount},{at:%Y-%m-%d %H:%M:%S},3\n")
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
            out.write(f"{tx},MP{i:012d},{amount},{at:%Y-%m-%d %H:%M:%S},0.00,payment\n")
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
            copy.write_row((f"{salt}{i:09d}", PROVIDER, f"MP{i:012d}", "payment", amount_of(i), "CNY",
                            start + timedelta(seconds=i % 86000), day, now, 3, "confirmed", "", "",
                            "{}"))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE reconciliation_fundvoucher")


# --- memory -------------------------------------------------------------------------------------

def _status_kb(pid: int | str, *fields: str) -> dict[str, int]:
    found = {}
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                name, _, value = line.partition(":")
                if name in fields:
                    found[name] = int(value.split()[0])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return found


def reset_own_peak() -> None:
    """Linux: start this process's peak resident set (VmHWM) again from its current size."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        pass


def own_peak_mb() -> float:
    return _status_kb("self", "VmHWM").get("VmHWM", 0) / 1024


class BackendMemory(threading.Thread):
    """Samples every PostgreSQL backend of the bench database (not other users') every 20 ms:
    peak resident and peak private (anonymous) memory per backend, by role."""

    def __init__(self, roles: dict[int, str]):
        super().__init__(daemon=True)
        self.roles = dict(roles)
        self.peaks: dict[int, tuple[int, int]] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        import psycopg

        with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
            own = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
            pids: list[int] = []
            last_lookup = 0.0
            while not self.stop.is_set():
                if time.monotonic() - last_lookup > 0.2:
                    pids = []
                    for pid, name, kind in conn.execute(
                            "SELECT pid, application_name, backend_type FROM pg_stat_activity"
                            " WHERE datname = %s", [BENCH_DB]):
                        if pid != own:
                            pids.append(pid)
                            if name.startswith("oms "):
                                self.roles.setdefault(pid, name[4:])
                            elif kind == "parallel worker":
                                self.roles.setdefault(pid, kind)
                    last_lookup = time.monotonic()
                for pid in pids:
                    kb = _status_kb(pid, "VmRSS", "RssAnon")
                    if kb:
                        rss, anon = self.peaks.get(pid, (0, 0))
                        self.peaks[pid] = (max(rss, kb.get("VmRSS", 0)), max(anon, kb.get("RssAnon", 0)))
                self.stop.wait(0.02)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.join()

    def summary(self) -> str:
        parts = []
        for pid, (rss, anon) in sorted(self.peaks.items(), key=lambda item: -item[1][0]):
            if anon < 8 * 1024 and pid not in self.roles:
                continue  # idle backends of other benchmarks' leftovers
            parts.append(f"{self.roles.get(pid, 'backend')} {rss / 1024:.0f} ({anon / 1024:.0f} private)")
        return ", ".join(parts) or "-"


# --- steps --------------------------------------------------------------------------------------

def ceiling_seconds() -> float:
    """The plain SQL full join of the two tables, as the run's settings allow it (no JIT,
    work_mem for an in-memory hash)."""
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL jit = off")
        cursor.execute("SET LOCAL work_mem = '192MB'")
        started = time.perf_counter()
        cursor.execute(CEILING_SQL)
        cursor.fetchall()
        return time.perf_counter() - started


def timed_run(day, fast: bool | None):
    """One reconciliation run as run_reconciliation does it, memory watched. `fast=False` takes
    the portable passes."""
    from django.db import connection

    from reconciliation import matching
    from reconciliation.models import ReconciliationRun

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (backend,) = cursor.fetchone()
    ceiling = ceiling_seconds()
    run = ReconciliationRun.objects.create(period_start=day, period_end=day, trigger="manual")
    reset_own_peak()
    with BackendMemory({backend: "run's backend"}) as memory:
        started = time.perf_counter()
        if fast is False:
            matching._reconcile(run, fast=False)
        else:
            matching.execute_run(run)
        seconds = time.perf_counter() - started
    run.refresh_from_db()
    return run, seconds, ceiling, own_peak_mb(), memory.summary()


def pandas_classification(statement: Path, vouchers: Path) -> dict | None:
    """The same classification with pandas on the two files, read included."""
    try:
        import numpy as np
        import pandas as pd
    except ImportError:
        return None
    lines = pd.read_csv(statement, usecols=["transaction_no", "order_no", "amount", "fee"])
    payments = pd.read_csv(vouchers, usecols=["transaction_no", "order_no", "amount", "callback_delay_seconds"])
    for frame, columns in ((lines, ("amount", "fee")), (payments, ("amount",))):
        for column in columns:  # cents: exact comparisons
            frame[column] = np.rint(frame[column].to_numpy() * 100).astype(np.int64)
    per_key = lines.groupby("transaction_no", sort=False).agg(
        n=("amount", "size"), line_amount=("amount", "sum"), fee=("fee", "sum"))
    pairs = payments.merge(per_key, how="outer", left_on="transaction_no", right_index=True, indicator=True)
    side = pairs["_merge"].to_numpy()
    expected, actual = pairs["amount"].to_numpy(), pairs["line_amount"].to_numpy()
    fee, n = pairs["fee"].to_numpy(), pairs["n"].to_numpy()
    late = pairs["callback_delay_seconds"].to_numpy() > DELAYED_CALLBACK_SECONDS
    kinds = np.select(
        [side == "left_only", side == "right_only", n > 1, (actual == expected) & late,
         actual == expected, (fee > 0) & (actual == expected - fee)],
        ["missing_in_statement", "missing_in_system", "duplicate_notification", "delayed_callback",
         "", "fee_deduction"], "amount_mismatch")
    counts = pd.Series(kinds[kinds != ""]).value_counts().to_dict()
    paid = payments["order_no"].value_counts()
    counts["duplicate_notification"] = counts.get("duplicate_notification", 0) + int((paid > 1).sum())
    return {kind: int(n) for kind, n in counts.items()}


def main() -> None:
    # The bench file (~70 MB for 1M lines) is over the upload cap meant for web requests.
    os.environ.setdefault("OMS_STATEMENT_MAX_BYTES", str(512 << 20))
    setup_django()
    from django.db import connection
    from django.utils import timezone

    from reconciliation.importing import import_statement

    reset()
    day = timezone.localdate()  # today: the import starts no automatic run of its own
    salt = uuid.uuid4().hex[:6].upper()
    path = ROOT / "var" / "bench" / f"statement-{LINES}.csv"
    voucher_path = ROOT / "var" / "bench" / f"vouchers-{LINES}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    counts = write_files(path, voucher_path, day, salt)
    data = path.read_bytes()
    load_vouchers(day, salt)

    reset_own_peak()
    started = time.perf_counter()
    statement = import_statement(data, account="bench-account", provider=PROVIDER,
                                 filename=path.name)
    import_seconds = time.perf_counter() - started
    import_rss = own_peak_mb()
    del data
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE reconciliation_statementline")

    def row(step, rows, seconds, ceiling, python_mb, backends, target):
        return {"step": step, "rows": rows, "seconds": f"{seconds:.2f}",
                "ceiling s": f"{ceiling:.2f}" if ceiling else "", "x ceiling": f"{seconds / ceiling:.1f}" if ceiling else "",
                "python peak MB": python_mb, "postgres backends peak MB": backends, "target": target}

    table = [row("import statement (generic CSV)", f"{statement.lines:,}", import_seconds, None,
                 f"{import_rss:.0f}", "", "<= 30 s")]
    run, seconds, ceiling, python_mb, backends = timed_run(day, None)
    size = f"{run.vouchers:,} x {run.statement_lines:,}"
    table.append(row("reconcile (first run of the day)", size, seconds, ceiling, f"{python_mb:.0f}", backends,
                     "<= 3 s, < pandas"))
    rerun, seconds, ceiling, python_mb, backends = timed_run(day, None)
    table.append(row("re-run the same day", f"{sum(rerun.counts.values()):,} findings", seconds, ceiling,
                     f"{python_mb:.0f}", backends, "same counts"))
    portable = None
    if os.environ.get("OMS_BENCH_PORTABLE") == "1":
        forget_findings()
        portable, seconds, ceiling, python_mb, backends = timed_run(day, False)
        table.append(row("portable passes (before issue 16), first run", size, seconds, ceiling,
                         f"{python_mb:.0f}", backends, ""))
    ceiling = ceiling_seconds()
    reset_own_peak()
    started = time.perf_counter()
    by_pandas = pandas_classification(path, voucher_path)
    seconds = time.perf_counter() - started
    if by_pandas is None:
        table.append({**row("pandas, same files (read + classify)", "", 0, None, "", "", ""),
                      "seconds": "pandas not installed"})
    else:
        import pandas

        table.append(row(f"pandas {pandas.__version__}, same files (read + classify)", size, seconds, ceiling,
                         f"{own_peak_mb():.0f}", "", ""))
    print_table(f"Issues 6 and 16: statements and reconciliation ({LINES:,} lines, PostgreSQL)", table)

    expected = {"amount_mismatch": counts["mismatch"], "missing_in_system": counts["line_only"],
                "missing_in_statement": counts["voucher_only"] + counts["line_only"]}
    found = {k: run.counts.get(k, 0) for k in expected}
    print(f"findings: {found} (expected {expected}); matched {run.matched:,}; "
          f"re-run identical: {rerun.counts == run.counts}"
          + (f"; portable passes identical: {portable.counts == run.counts and portable.matched == run.matched}"
             if portable else "")
          + (f"; pandas: {by_pandas}" if by_pandas else ""))


if __name__ == "__main__":
    main()
