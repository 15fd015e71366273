from datetime import datetime

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from channels.models import Channel
from channels.replay import payloads_in, replay


def aware(value: str, name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--{name} {value!r} is not an ISO date-time (2026-01-09T10:00+08:00)") from None
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment)


class Command(BaseCommand):
    help = "Re-normalise the raw payloads a channel sent in a time window, with today's rules."

    def add_arguments(self, parser):
        parser.add_argument("--channel", required=True)
        parser.add_argument("--since", required=True, help="ISO date-time, inclusive")
        parser.add_argument("--until", required=True, help="ISO date-time, exclusive")

    def handle(self, *args, channel, since, until, **options):
        found = Channel.objects.filter(code=channel).first()
        if found is None:
            raise CommandError(f"no channel {channel!r}")
        start, end = aware(since, "since"), aware(until, "until")
        if end <= start:
            raise CommandError("--until must be after --since")
        total = payloads_in(found, start, end).count()
        self.stdout.write(f"replaying {total} payloads of {found.code}")

        def progress(done, total):
            width = 30
            filled = width * done // max(total, 1)
            self.stdout.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}", ending="")
            self.stdout.flush()

        counts = replay(found, start, end, progress=progress)
        self.stdout.write("")
        self.stdout.write(", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "nothing to replay")
