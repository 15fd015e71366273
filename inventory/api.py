from rest_framework import viewsets

from oms.api import ModelPermissions

from .models import SKU, Warehouse
from .serializers import SKUSerializer, WarehouseSerializer


class WarehouseViewSet(viewsets.ModelViewSet):
    """Warehouses (ops): `provinces` served first, `priority` (lower ships first), `active`."""

    queryset = Warehouse.objects.all()
    serializer_class = WarehouseSerializer
    permission_classes = [ModelPermissions]
    lookup_field = "code"
    filterset_fields = ["active"]
    http_method_names = ["get", "post", "put", "patch", "head", "options"]


class SKUViewSet(viewsets.ModelViewSet):
    queryset = SKU.objects.all()
    serializer_class = SKUSerializer
    permission_classes = [ModelPermissions]
    lookup_field = "code"
    filterset_fields = ["category", "barcode"]
    http_method_names = ["get", "post", "put", "patch", "head", "options"]
