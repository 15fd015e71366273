from django.db import migrations

ROLES = ("ops", "customer_service", "finance", "warehouse_device", "integration")


def create_roles(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for role in ROLES:
        Group.objects.using(schema_editor.connection.alias).get_or_create(name=role)


def remove_roles(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Group.objects.using(schema_editor.connection.alias).filter(name__in=ROLES).delete()


class Migration(migrations.Migration):
    # The groups exist from here on; their permissions are granted after every migrate by
    # oms.roles.sync_role_permissions, because a model's permissions only exist after migrate.
    dependencies = [("oms", "0001_initial"), ("auth", "0012_alter_user_first_name_max_length")]

    operations = [migrations.RunPython(create_roles, remove_roles)]
