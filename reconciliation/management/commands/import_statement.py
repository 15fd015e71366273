"""manage.py import_statement PATH --account NAME [--profile P] [--provider P]"""

import sys
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from oms.errors import DomainError
from reconciliation.importing import StatementRejected, import_statement
from reconciliation.statements import PROFILES

SHOWN_BAD_ROWS = 50


class Command(BaseCommand):
    help = (
        "Import a bank export, WeChat Pay / Alipay bill or channel settlement file (CSV or XLSX; "
        "UTF-8, UTF-8 with BOM or GBK). All or nothing: any bad row rejects the file, every bad "
        "row is listed and the command exits 1. The same file twice is refused."
    )

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument("--account", required=True,
                            help="bank account, merchant id, or the channel code for settlements")
        parser.add_argument("--profile", choices=PROFILES, help="detected from the header if omitted")
        parser.add_argument("--provider", default="",
                            help="for bank and generic files: whose vouchers the lines answer for")

    def handle(self, *args, path, account, profile, provider, **options):
        file = Path(path)
        if not file.is_file():
            raise CommandError(f"no file {path}")
        started = time.monotonic()
        try:
            statement = import_statement(
                file.read_bytes(), account=account, profile=profile, filename=file.name,
                provider=provider, progress=self._bar,
            )
        except StatementRejected as exc:
            sys.stderr.write("\n")
            for row in exc.rows[:SHOWN_BAD_ROWS]:
                self.stderr.write(f"  row {row['row']} {row['column']} {row['value']!r}: {row['reason']}")
            if len(exc.rows) > SHOWN_BAD_ROWS:
                self.stderr.write(f"  … and {len(exc.rows) - SHOWN_BAD_ROWS} more bad rows")
            raise CommandError(f"refused, nothing imported: {exc.detail}") from exc
        except DomainError as exc:
            raise CommandError(f"refused: {exc.detail}") from exc
        sys.stderr.write("\n")
        self.stdout.write(
            f"statement {statement.pk}: {statement.lines} lines ({statement.profile}, "
            f"{statement.encoding}) for {statement.period_start}…{statement.period_end}, "
            f"in {statement.total_in} / out {statement.total_out}, "
            f"{time.monotonic() - started:.1f} s"
        )

    def _bar(self, done: int, total: int) -> None:
        total = max(total, done, 1)
        filled = int(30 * done / total)
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {done:,}/{total:,} rows")
        sys.stderr.flush()
