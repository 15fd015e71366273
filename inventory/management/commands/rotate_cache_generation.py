"""manage.py rotate_cache_generation: after restoring the database from a backup."""

from django.core.management.base import BaseCommand

from inventory import cache
from inventory.models import CacheGeneration


class Command(BaseCommand):
    help = (
        "Start a new availability-cache namespace. Run it after restoring the database from a "
        "backup: the restore brings back the backup's generation, while Redis still holds numbers "
        "(and newer versions) written after the backup was taken. Every SKU is read from the "
        "database once; the old keys expire within 24 hours."
    )

    def handle(self, *args, **options):
        old, new = CacheGeneration.rotate()
        cache.note_generation(new)
        self.stdout.write(f"availability cache generation {old or '(none)'} -> {new}")
