from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from orders.diagrams import lifecycle_markdown


class Command(BaseCommand):
    help = "Write docs/lifecycle.md: the order and fulfilment-order state diagrams, drawn from the code."

    def add_arguments(self, parser):
        parser.add_argument("--check", action="store_true", help="Exit non-zero if the file is out of date.")

    def handle(self, *args, check: bool = False, **options):
        path = Path(settings.BASE_DIR) / "docs" / "lifecycle.md"
        text = lifecycle_markdown()
        if check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                raise CommandError(f"{path} is out of date: run manage.py lifecycle_diagrams")
            return
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
        self.stdout.write(f"wrote {path}")
