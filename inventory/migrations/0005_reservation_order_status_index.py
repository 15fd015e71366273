import django.db.models.deletion
from django.db import migrations, models

from oms.migration_ops import foreign_key_index_dropped


class Migration(migrations.Migration):

    dependencies = [
        ("inventory", "0004_cache_check"),
        ("orders", "0009_orderevent_order_index_by_composite"),
    ]

    operations = [
        # An order's active reservations are read by (order, status) on every scan; the
        # composite index also serves every look-up by order.
        migrations.AddIndex(
            model_name="reservation",
            index=models.Index(fields=["order", "status"], name="reservation_order_status_idx"),
        ),
        foreign_key_index_dropped(
            "reservation", "order",
            models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT,
                              related_name="reservations", to="orders.order"),
            table="inventory_reservation", column="order_id", index="inventory_reservation_order_id_1704daf3",
        ),
    ]
