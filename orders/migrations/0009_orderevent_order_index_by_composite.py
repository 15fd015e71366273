import django.db.models.deletion
from django.db import migrations, models

from oms.migration_ops import foreign_key_index_dropped


class Migration(migrations.Migration):

    dependencies = [
        ("orders", "0008_order_source_raw_sha256"),
    ]

    operations = [
        # The single-column index on order_id duplicates the leading column of orderevent_order_at_idx.
        foreign_key_index_dropped(
            "orderevent", "order",
            models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT,
                              related_name="events", to="orders.order"),
            table="orders_orderevent", column="order_id", index="orders_orderevent_order_id_b26297f3",
        ),
    ]
