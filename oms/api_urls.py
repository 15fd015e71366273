"""The /api/v1/ tree: one router for every app's viewsets."""

from django.urls import path
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.permissions import AllowAny
from rest_framework.routers import DefaultRouter

from channels.api import ChannelViewSet, DuplicatesReportView, WebhookView
from channels.api_drift import SchemaDriftViewSet
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


class ObtainToken(ObtainAuthToken):
    """POST {"username", "password"} → {"token"}; the one API call that needs no credentials."""

    permission_classes = [AllowAny]


router = DefaultRouter()
router.register("orders", OrderViewSet, basename="order")
router.register("channels/drift", SchemaDriftViewSet, basename="channel-drift")  # before "channels"
router.register("channels", ChannelViewSet, basename="channel")
router.register("inventory/warehouses", WarehouseViewSet, basename="warehouse")
router.register("inventory/skus", SKUViewSet, basename="sku")
router.register("inventory/stock", StockLevelViewSet, basename="stock-level")
router.register("inventory/listings", ListingViewSet, basename="listing")
router.register("inventory/counts", StockCountViewSet, basename="stock-count")

urlpatterns = [
    path("auth/token/", ObtainToken.as_view(), name="auth-token"),
    path("channels/<str:code>/webhook/", WebhookView.as_view(), name="channel-webhook"),
    path("channels/duplicates/", DuplicatesReportView.as_view(), name="channel-duplicates"),
    path("warehouse/events/", ScannerEventView.as_view(), name="scanner-events"),
    path("warehouse/devices/", DeviceView.as_view(), name="warehouse-devices"),
    path("inventory/receipts/", ReceiptView.as_view(), name="inventory-receipts"),
    path("inventory/availability/", AvailabilityView.as_view(), name="inventory-availability"),
    path("inventory/stock/<str:warehouse>/<str:sku>/safety/", SafetyStockView.as_view(),
         name="inventory-safety-stock"),
]
