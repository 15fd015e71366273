from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


class AlertsConfig(AppConfig):
    name = "alerts"
    verbose_name = _("Alerts")

    def ready(self):
        from .engine import ensure_builtin_rules

        post_migrate.connect(ensure_builtin_rules, sender=self, dispatch_uid="alerts.builtin_rules")
