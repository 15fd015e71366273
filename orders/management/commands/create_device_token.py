from django.core.management.base import BaseCommand, CommandError

from oms.errors import DomainError
from orders.devices import create_device


class Command(BaseCommand):
    help = "Register a warehouse scanner device and print its API token (shown once)."

    def add_arguments(self, parser):
        parser.add_argument("--warehouse", required=True, help="warehouse code")
        parser.add_argument("--name", required=True, help="device name, e.g. pack-B")

    def handle(self, *args, warehouse, name, **options):
        try:
            device, token = create_device(warehouse, name)
        except DomainError as exc:
            raise CommandError(exc.detail) from exc
        self.stdout.write(f"device {device.pk} {device.warehouse.code}/{device.name}")
        self.stdout.write(f"token {token}")
