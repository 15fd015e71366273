from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


class OmsConfig(AppConfig):
    name = "oms"
    verbose_name = _("Order management center")

    def ready(self):
        from . import checks  # noqa: F401 - registers the system checks
        from .roles import sync_role_permissions
        from .schedules import ensure_default_schedules

        # Permissions of a model exist only after its app's post_migrate (a data migration
        # cannot see them), so each migrate re-grants every role what ROLE_PERMISSIONS says.
        post_migrate.connect(sync_role_permissions, dispatch_uid="oms.sync_role_permissions")
        post_migrate.connect(ensure_default_schedules, dispatch_uid="oms.default_schedules")
