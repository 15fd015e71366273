"""System checks of the project's own settings (`manage.py check --deploy`)."""

from django.conf import settings
from django.core.checks import Error, Tags, register


@register(Tags.security, deploy=True)
def identity_key(app_configs, **kwargs) -> list[Error]:
    """Buyer identities are keyed hashes of phones that are never stored: their key must be
    its own, or rotating SECRET_KEY splits every identity (duplicates stop merging, phone
    search stops finding)."""
    key = getattr(settings, "OMS_IDENTITY_KEY", "")
    if not key or key == settings.SECRET_KEY:
        return [Error(
            "OMS_IDENTITY_KEY is not set or equals SECRET_KEY",
            hint="Set OMS_IDENTITY_KEY to a long random value of its own and never change it "
                 "(changing it splits every buyer identity).",
            id="oms.E001",
        )]
    return []
