"""manage.py import_stock_count PATH --warehouse CODE [--reference R] [--confirm]"""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from inventory import counts
from oms.errors import DomainError


class Command(BaseCommand):
    help = (
        "Import a stock count from a CSV or XLSX file (columns sku = code or barcode, counted, "
        "optional reason) as a draft count; with --confirm, also write the adjustments. "
        "All or nothing: on any bad input nothing is stored and the command exits 1."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help="a .csv or .xlsx file")
        parser.add_argument("--warehouse", required=True, help="warehouse code")
        parser.add_argument("--reference", default="", help="count reference, e.g. CNT-2026-01")
        parser.add_argument("--confirm", action="store_true",
                            help="confirm the count: one adjustment movement per variance")

    def handle(self, *args, path, warehouse, reference, confirm, **options):
        file = Path(path)
        if not file.is_file():
            raise CommandError(f"no file {path}")
        try:
            fmt = counts.format_for(file.name)
            with transaction.atomic():
                count = counts.start_count(warehouse, reference)
                imported = counts.import_count_lines(count, file.read_bytes(), fmt)
                rows = counts.confirm_count(count.pk) if confirm else None
        except DomainError as exc:
            raise CommandError(" ".join(f"refused: {exc.detail}".split())) from exc
        label = count.reference or f"#{count.pk}"
        self.stdout.write(f"count {count.pk} ({label}) at {count.warehouse.code}: "
                          f"{imported} lines imported")
        if rows is None:
            self.stdout.write("draft: confirm it in the admin, the API or with --confirm")
            return
        summary = counts.variance_summary(rows)
        self.stdout.write(
            f"confirmed: {summary['lines_with_variance']} of {summary['lines']} lines differed, "
            f"+{summary['units_over']} / -{summary['units_short']} units (net {summary['net']:+})"
        )
        for row in rows:
            if row.variance:
                self.stdout.write(f"  {row.sku}\t{row.system} -> {row.counted}\t{row.variance:+}"
                                  f"\t{row.reason}")
