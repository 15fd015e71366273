import django.db.models.deletion
from django.db import migrations, models

# The single-column index on order_id duplicates the leading column of orderevent_order_at_idx.
# Only the index goes: AlterField would also drop and re-validate the foreign key, a long lock
# on a table of millions of events.
DROP_INDEX = 'DROP INDEX IF EXISTS "orders_orderevent_order_id_b26297f3"'
CREATE_INDEX = ('CREATE INDEX IF NOT EXISTS "orders_orderevent_order_id_b26297f3" '
                'ON "orders_orderevent" ("order_id")')


class Migration(migrations.Migration):

    dependencies = [
        ("orders", "0008_order_source_raw_sha256"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="orderevent",
                    name="order",
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT,
                                            related_name="events", to="orders.order"),
                ),
            ],
            database_operations=[migrations.RunSQL(DROP_INDEX, CREATE_INDEX)],
        ),
    ]
