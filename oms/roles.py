"""The five roles of ARCHITECTURE.md as Django groups, and the permissions each one holds.

A role is granted permissions by pattern (`app_label.codename`, `*` allowed) so that a model
added by a later migration is covered as soon as it exists, without editing old migrations.
"""

from fnmatch import fnmatchcase

OPS = "ops"
CUSTOMER_SERVICE = "customer_service"
FINANCE = "finance"
WAREHOUSE_DEVICE = "warehouse_device"
INTEGRATION = "integration"
ROLES = (OPS, CUSTOMER_SERVICE, FINANCE, WAREHOUSE_DEVICE, INTEGRATION)

ROLE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    # Runs the order flow in the admin: orders, approvals, exceptions, stock, channels, alerts.
    OPS: (
        "orders.*",
        "inventory.*",
        "channels.*",
        "alerts.*",
        "reconciliation.view_*",
        "django_celery_beat.*",
        "oms.view_workerheartbeat",
    ),
    # Reads orders and their timelines, adds notes; changes nothing else.
    CUSTOMER_SERVICE: (
        "orders.view_*",
        "orders.add_order_note",
        "inventory.view_warehouse",
        "inventory.view_sku",
        "inventory.view_stocklevel",
        "channels.view_channel",
        "alerts.view_alert",
    ),
    # Statements, reconciliation, reversals; reads orders to check money against them.
    FINANCE: (
        "reconciliation.*",
        "orders.view_order",
        "orders.view_orderline",
        "orders.view_orderevent",
        "channels.view_channel",
    ),
    # Scanner events for its own warehouse, nothing else (the binding lives on the device).
    WAREHOUSE_DEVICE: ("orders.post_scanner_event",),
    # Channel and payment callbacks authenticate by signature; this role is for the
    # service accounts of integrations that pull through the API.
    INTEGRATION: ("channels.view_channel", "channels.view_rawpayload", "orders.view_order",
                  "inventory.view_stocklevel"),
}


def permissions_for(role: str, permissions) -> list:
    """The Permission objects in `permissions` that the role's patterns match."""
    patterns = ROLE_PERMISSIONS[role]
    return [
        perm
        for perm in permissions
        if any(
            fnmatchcase(f"{perm.content_type.app_label}.{perm.codename}", pattern)
            for pattern in patterns
        )
    ]


def sync_role_permissions(using="default", apps=None, **kwargs):
    """Create the role groups and grant each exactly the permissions of ROLE_PERMISSIONS."""
    from django.contrib.auth.models import Group, Permission

    all_permissions = list(Permission.objects.using(using).select_related("content_type"))
    for role in ROLES:
        group, _ = Group.objects.using(using).get_or_create(name=role)
        group.permissions.set(permissions_for(role, all_permissions))
