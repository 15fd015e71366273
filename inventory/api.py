"""Inventory API (CONTRACTS.md: master data, receipts, availability). Thin: validate, call."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.response import Response
from rest_framework.views import APIView

from channels.models import Channel
from oms.api import ModelPermissions, permission_required
from oms.errors import Invalid

from . import services
from .models import SKU, ChannelListing, StockLevel, Warehouse
from .selectors_availability import availability
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


class ReceiptSerializer(serializers.Serializer):
    warehouse = serializers.CharField(max_length=32)
    sku = serializers.CharField(max_length=64)
    quantity = serializers.IntegerField(min_value=1, max_value=10_000_000)
    reference = serializers.CharField(max_length=100, required=False, default="")


class StockLevelSerializer(serializers.ModelSerializer):
    warehouse = serializers.CharField(source="warehouse.code")
    sku = serializers.CharField(source="sku.code")
    available = serializers.IntegerField()

    class Meta:
        model = StockLevel
        fields = ["warehouse", "sku", "on_hand", "reserved", "available", "safety_stock", "updated_at"]


class ReceiptView(APIView):
    """Stock in: `{"warehouse", "sku", "quantity", "reference"}` → the new stock level."""

    permission_classes = [permission_required("inventory.add_stockmovement")]

    @extend_schema(request=ReceiptSerializer, responses={201: StockLevelSerializer})
    def post(self, request):
        serializer = ReceiptSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        level = services.receive_stock(data["warehouse"], data["sku"], data["quantity"],
                                       reference=data["reference"], user=request.user)
        return Response(StockLevelSerializer(level).data, status=status.HTTP_201_CREATED)


class WarehouseAvailabilitySerializer(serializers.Serializer):
    warehouse = serializers.CharField()
    on_hand = serializers.IntegerField()
    reserved = serializers.IntegerField()
    available = serializers.IntegerField()
    safety_stock = serializers.IntegerField()


class AvailabilitySerializer(serializers.Serializer):
    sku = serializers.CharField()
    warehouses = WarehouseAvailabilitySerializer(many=True)
    available = serializers.IntegerField()
    source = serializers.ChoiceField(choices=["cache", "database"])


class AvailabilityView(APIView):
    """`?sku=CODE` → per warehouse on_hand, reserved, available (served from the cache)."""

    permission_classes = [permission_required("inventory.view_stocklevel")]

    @extend_schema(parameters=[OpenApiParameter("sku", str, required=True)],
                   responses=AvailabilitySerializer)
    def get(self, request):
        code = request.query_params.get("sku", "").strip()
        if not code:
            raise Invalid({"sku": ["required: the SKU code"]})
        sku = SKU.objects.filter(code=code).first()
        if sku is None:
            raise Invalid({"sku": [f"no SKU with code {code!r}"]})
        result = availability(sku)
        return Response({
            "sku": sku.code,
            "warehouses": result.levels,
            "available": sum(level["available"] for level in result.levels),
            "source": result.source,
        })


class SafetyStockSerializer(serializers.Serializer):
    safety_stock = serializers.IntegerField(min_value=0)


class StockLevelViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Stock levels (ops); `PATCH .../<warehouse>/<sku>/` is below, as a plain view."""

    queryset = StockLevel.objects.select_related("warehouse", "sku").order_by("sku__code", "warehouse__code")
    serializer_class = StockLevelSerializer
    permission_classes = [ModelPermissions]
    filterset_fields = {"warehouse__code": ["exact"], "sku__code": ["exact"], "sku__category": ["exact"]}


class SafetyStockView(APIView):
    permission_classes = [permission_required("inventory.change_stocklevel")]

    @extend_schema(request=SafetyStockSerializer, responses=StockLevelSerializer)
    def patch(self, request, warehouse, sku):
        serializer = SafetyStockSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        level = services.set_safety_stock(warehouse, sku, serializer.validated_data["safety_stock"])
        return Response(StockLevelSerializer(level).data)


class ListingSerializer(serializers.ModelSerializer):
    channel = serializers.SlugRelatedField(slug_field="code", queryset=Channel.objects.all())
    sku = serializers.SlugRelatedField(slug_field="code", queryset=SKU.objects.all())

    class Meta:
        model = ChannelListing
        fields = ["id", "channel", "sku", "is_open", "closed_reason", "promo_cap", "promo_reserved", "changed_at"]
        read_only_fields = ["is_open", "closed_reason", "promo_reserved", "changed_at"]


class ListingViewSet(viewsets.ModelViewSet):
    """Channel listings (ops): promo caps; open/closed follows safety stock (read-only here)."""

    queryset = ChannelListing.objects.select_related("channel", "sku").order_by("channel__code", "sku__code")
    serializer_class = ListingSerializer
    permission_classes = [ModelPermissions]
    filterset_fields = {"channel__code": ["exact"], "sku__code": ["exact"], "is_open": ["exact"]}
    http_method_names = ["get", "post", "patch", "head", "options"]
