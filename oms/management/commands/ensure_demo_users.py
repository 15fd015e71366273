from django.core.management.base import BaseCommand, CommandError

from oms.demo import DEMO_PASSWORD, DemoRefused, ensure_demo_users


class Command(BaseCommand):
    help = "Create the demo superuser and one user per role (development only) and print them."

    def handle(self, *args, **options):
        try:
            accounts = ensure_demo_users()
        except DemoRefused as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Demo accounts (password for all: {DEMO_PASSWORD}):")
        for username, role in accounts:
            self.stdout.write(f"  {username:<10} {role}")
