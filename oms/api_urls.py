"""The /api/v1/ tree: one router for every app's viewsets."""

from django.urls import path, re_path
from rest_framework import status
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter

from alerts.api import AlertViewSet
from channels.api import ChannelViewSet, DeliveryView, DuplicatesReportView, WebhookView
from channels.api_drift import SchemaDriftViewSet
from channels.api_tracking import Kuaidi100PushView
from inventory.api import (
    AvailabilityView,
    ListingViewSet,
    ReceiptView,
    SafetyStockView,
    SKUViewSet,
    StockLevelViewSet,
    WarehouseViewSet,
)
from inventory.api_counts import StockCountViewSet
from orders.api import DeviceView, OrderViewSet, ScannerEventView
from orders.api_workflow import ApprovalTaskViewSet, ExceptionCaseViewSet, OverrideApprovalView
from reconciliation.api import (
    DiscrepancyViewSet,
    PaymentMatchViewSet,
    RunViewSet,
    StatementImportViewSet,
    StatementViewSet,
    VoucherViewSet,
)
from reconciliation.callbacks import AlipayCallback, GenericCallback, WechatPayCallback

from .throttling import AuthTokenThrottle


class ObtainToken(ObtainAuthToken):
    """POST {"username", "password"} → {"token"}; the one API call that needs no credentials.
    Throttled by django-axes: a username locked out from this address gets 429, even with the
    right password; and by address (oms.throttling, rate `auth_token`): past it, 429 whatever
    the username."""

    permission_classes = [AllowAny]
    throttle_classes = [AuthTokenThrottle]

    def post(self, request, *args, **kwargs):
        try:
            return super().post(request, *args, **kwargs)
        except ValidationError:
            if getattr(request, "axes_locked_out", False) or getattr(request._request, "axes_locked_out", False):
                return Response({"error": "throttled", "detail": "too many failed logins: try again later"},
                                status=status.HTTP_429_TOO_MANY_REQUESTS)
            raise


router = DefaultRouter()
router.register("orders", OrderViewSet, basename="order")
router.register("approvals", ApprovalTaskViewSet, basename="approval")
router.register("exceptions", ExceptionCaseViewSet, basename="exception-case")
router.register("alerts", AlertViewSet, basename="alert")
router.register("channels/drift", SchemaDriftViewSet, basename="channel-drift")  # before "channels"
router.register("channels", ChannelViewSet, basename="channel")
router.register("inventory/warehouses", WarehouseViewSet, basename="warehouse")
router.register("inventory/skus", SKUViewSet, basename="sku")
router.register("inventory/stock", StockLevelViewSet, basename="stock-level")
router.register("inventory/listings", ListingViewSet, basename="listing")
router.register("inventory/counts", StockCountViewSet, basename="stock-count")
router.register("reconciliation/statements", StatementViewSet, basename="statement")
router.register("reconciliation/imports", StatementImportViewSet, basename="statement-import")
router.register("reconciliation/vouchers", VoucherViewSet, basename="voucher")
router.register("reconciliation/runs", RunViewSet, basename="reconciliation-run")
router.register("reconciliation/discrepancies", DiscrepancyViewSet, basename="discrepancy")
router.register("reconciliation/payment-matches", PaymentMatchViewSet, basename="payment-match")

urlpatterns = [
    path("auth/token/", ObtainToken.as_view(), name="auth-token"),
    path("channels/<str:code>/webhook/", WebhookView.as_view(), name="channel-webhook"),
    re_path(r"^channels/(?P<code>[^/]+)/deliveries/(?P<delivery>[0-9]{1,18})/$", DeliveryView.as_view(),
            name="channel-delivery"),
    path("channels/duplicates/", DuplicatesReportView.as_view(), name="channel-duplicates"),
    path("carriers/kuaidi100/push/", Kuaidi100PushView.as_view(), name="carrier-push-kuaidi100"),
    path("payments/notify/wechatpay/", WechatPayCallback.as_view(), name="payment-notify-wechatpay"),
    path("payments/notify/alipay/", AlipayCallback.as_view(), name="payment-notify-alipay"),
    path("payments/notify/generic/", GenericCallback.as_view(), name="payment-notify-generic"),
    path("orders/<str:order_no>/override-approval/", OverrideApprovalView.as_view(),
         name="order-override-approval"),
    path("warehouse/events/", ScannerEventView.as_view(), name="scanner-events"),
    path("warehouse/devices/", DeviceView.as_view(), name="warehouse-devices"),
    path("inventory/receipts/", ReceiptView.as_view(), name="inventory-receipts"),
    path("inventory/availability/", AvailabilityView.as_view(), name="inventory-availability"),
    path("inventory/stock/<str:warehouse>/<str:sku>/safety/", SafetyStockView.as_view(),
         name="inventory-safety-stock"),
]
