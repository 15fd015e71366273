"""manage.py check_alerts: one scan of every active rule, by hand."""

import time

from django.core.management.base import BaseCommand, CommandError

from alerts.delivery import deliver_due
from alerts.engine import check_alerts


class Command(BaseCommand):
    help = "Scan every active alert rule once: open, auto-resolve and escalate alerts, then send notifications."

    def add_arguments(self, parser):
        parser.add_argument("--no-send", action="store_true", help="leave notifications to the worker")

    def handle(self, *args, no_send=False, **options):
        started = time.monotonic()
        result = check_alerts()
        for code, rule in sorted(result.rules.items()):
            line = f"{code}: +{rule.opened} opened, {rule.resolved} resolved, {rule.escalated} escalated"
            self.stdout.write(line + (f"  ERROR {rule.error}" if rule.error else ""))
        self.stdout.write(f"scan took {time.monotonic() - started:.2f} s")
        if not no_send:
            self.stdout.write(f"notifications: {deliver_due()}")
        failed = [code for code, rule in result.rules.items() if rule.error]
        if failed:
            raise CommandError(f"rules failed: {', '.join(failed)}")
