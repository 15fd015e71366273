"""Demo alerts: one scan over the demo orders, so the in-app list shows what is stuck."""

from .engine import check_alerts


def load(stdout) -> None:
    result = check_alerts()
    stdout.write(f"  alerts: {result.total('opened')} opened by the first scan")
