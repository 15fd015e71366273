from django.core.management.base import BaseCommand, CommandError

from orders.identity import rehash_from_orders


class Command(BaseCommand):
    help = ("During an OMS_IDENTITY_KEY rotation (OMS_IDENTITY_PREVIOUS_KEY set to the old key): "
            "re-key buyer identities from the orders' receivers, with a progress bar.")

    def handle(self, *args, **options):
        def progress(done, total):
            width = 30
            filled = width * done // max(total, 1)
            self.stdout.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}", ending="")
            self.stdout.flush()

        try:
            counts = rehash_from_orders(progress=progress)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write("")
        self.stdout.write(f"re-keyed {counts['rekeyed']}, already current {counts['current']}, "
                          f"other (another buyer phone, or seen under both keys) {counts['other']}")
