"""The /api/v1/ tree: one router for every app's viewsets."""

from django.urls import path
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.permissions import AllowAny
from rest_framework.routers import DefaultRouter

from inventory.api import SKUViewSet, WarehouseViewSet
from orders.api import DeviceView, OrderViewSet, ScannerEventView


class ObtainToken(ObtainAuthToken):
    """POST {"username", "password"} → {"token"}; the one API call that needs no credentials."""

    permission_classes = [AllowAny]


router = DefaultRouter()
router.register("orders", OrderViewSet, basename="order")
router.register("inventory/warehouses", WarehouseViewSet, basename="warehouse")
router.register("inventory/skus", SKUViewSet, basename="sku")

urlpatterns = [
    path("auth/token/", ObtainToken.as_view(), name="auth-token"),
    path("warehouse/events/", ScannerEventView.as_view(), name="scanner-events"),
    path("warehouse/devices/", DeviceView.as_view(), name="warehouse-devices"),
]
