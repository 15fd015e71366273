from importlib import import_module

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

# Each app that has demo data exposes `demo.load(stdout)`; listed in dependency order.
DEMO_MODULES = ("oms.demo_data", "orders.demo", "channels.demo", "reconciliation.demo", "alerts.demo")


class Command(BaseCommand):
    help = "Load demo data (idempotent: a second run adds nothing). Refused in production."

    def handle(self, *args, **options):
        if settings.PRODUCTION:
            raise CommandError("oms_demo refuses to run with OMS_ENV=production")
        for module_name in DEMO_MODULES:
            module = import_module(module_name)
            with transaction.atomic():
                module.load(self.stdout)
        self.stdout.write(self.style.SUCCESS("Demo data ready."))
