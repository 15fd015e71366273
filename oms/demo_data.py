"""Demo data of the foundation: the default beat schedules (apps add theirs after it)."""

from .schedules import ensure_default_schedules


def load(stdout) -> None:
    created = ensure_default_schedules()
    stdout.write(f"  schedules: {created} created")
