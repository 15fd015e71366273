"""Read queries of the channels app."""

from datetime import timedelta

from django.db.models import Count
from django.db.models.functions import TruncHour
from django.utils import timezone

from orders.models import Order, OrderLine


def duplicates_report(hours: int = 24) -> dict:
    since = timezone.now() - timedelta(hours=hours)
    merged = Order.objects.filter(merged_into__isnull=False, placed_at__gte=since)
    per_hour = (
        merged.annotate(hour=TruncHour("placed_at")).values("channel__code", "hour")
        .annotate(duplicates=Count("id")).order_by("hour", "channel__code")
    )
    top_skus = (
        OrderLine.objects.filter(order__in=merged).values("sku__code")
        .annotate(orders=Count("order", distinct=True)).order_by("-orders", "sku__code")[:10]
    )
    return {
        "since": timezone.localtime(since).isoformat(),
        "per_channel_hour": [
            {"channel": row["channel__code"], "hour": timezone.localtime(row["hour"]).isoformat(),
             "duplicates": row["duplicates"]}
            for row in per_hour
        ],
        "top_skus": [{"sku": row["sku__code"], "orders": row["orders"]} for row in top_skus],
    }
