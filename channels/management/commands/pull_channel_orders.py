from django.core.management.base import BaseCommand, CommandError

from channels.adapters.base import ChannelAPIError, TransportError
from channels.models import Channel
from channels.pulls import PullBusy, pull


class Command(BaseCommand):
    help = "Pull new and updated orders now, for one channel or every active channel with an API."

    def add_arguments(self, parser):
        parser.add_argument("--channel", help="channel code (default: all active channels with an API)")

    def handle(self, *args, channel=None, **options):
        channels = Channel.objects.filter(active=True).exclude(api_base_url="")
        if channel:
            channels = Channel.objects.filter(code=channel)
            if not channels.exists():
                raise CommandError(f"no channel {channel!r}")
        failed = 0
        for found in channels:
            try:
                run = pull(found.pk)
            except PullBusy:
                self.stdout.write(f"{found.code}: a pull is already running")
                continue
            except (TransportError, ChannelAPIError) as exc:
                failed += 1
                self.stderr.write(f"{found.code}: failed: {exc}")
                continue
            self.stdout.write(f"{found.code}: {run.fetched} fetched, {run.created} created, "
                              f"{run.updated} updated, {run.unchanged} unchanged, {run.held} held, "
                              f"{run.failed} failed in {run.duration_seconds:.1f} s")
        if failed:
            raise CommandError(f"{failed} channel(s) failed to pull")
