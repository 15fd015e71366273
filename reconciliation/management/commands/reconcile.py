"""manage.py reconcile --date YYYY-MM-DD | --from YYYY-MM-DD --to YYYY-MM-DD"""

from datetime import date

from django.core.management.base import BaseCommand, CommandError

from reconciliation.matching import run_reconciliation
from reconciliation.models import ReconciliationRun


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"not a date (YYYY-MM-DD): {value!r}") from None


class Command(BaseCommand):
    help = "Reconcile vouchers against imported statements for a business day or a period."

    def add_arguments(self, parser):
        parser.add_argument("--date")
        parser.add_argument("--from", dest="start")
        parser.add_argument("--to", dest="end")

    def handle(self, *args, date=None, start=None, end=None, **options):
        if date and (start or end):
            raise CommandError("give --date or --from/--to, not both")
        if date:
            start = end = date
        if not (start and end):
            raise CommandError("--date YYYY-MM-DD (or --from and --to) is required")
        first, last = _day(start), _day(end)
        if last < first:
            raise CommandError("--to is before --from")
        run = run_reconciliation(first, last, ReconciliationRun.Trigger.MANUAL)
        self.stdout.write(
            f"run {run.pk} {run.period_start}…{run.period_end}: {run.vouchers} vouchers, "
            f"{run.statement_lines} statement lines, {run.matched} matched"
        )
        for kind, count in run.counts.items():
            if count:
                self.stdout.write(f"  {kind}: {count}")
