from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = []

    operations = [
        migrations.CreateModel(
            name="WorkerHeartbeat",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("worker", models.CharField(max_length=200, unique=True, verbose_name="worker")),
                ("last_seen", models.DateTimeField(verbose_name="last seen")),
                ("beats", models.PositiveBigIntegerField(default=0, verbose_name="beats")),
            ],
            options={"verbose_name": "worker heartbeat", "verbose_name_plural": "worker heartbeats"},
        ),
    ]
