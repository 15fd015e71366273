from django.db import migrations

from oms.migration_ops import append_only


class Migration(migrations.Migration):
    dependencies = [("inventory", "0002_stock")]

    operations = [append_only("inventory_stockmovement")]
