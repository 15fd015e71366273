import secrets

from django.db import migrations


def create_manual_channel(apps, schema_editor):
    Channel = apps.get_model("channels", "Channel")
    Channel.objects.using(schema_editor.connection.alias).get_or_create(
        code="MANUAL",
        defaults={
            "name": "Manual entry (phone, offline)",
            "kind": "generic",
            "order_prefix": "MN",
            "webhook_secret": secrets.token_urlsafe(32),
        },
    )


class Migration(migrations.Migration):
    dependencies = [("channels", "0001_initial")]

    operations = [migrations.RunPython(create_manual_channel, migrations.RunPython.noop)]
