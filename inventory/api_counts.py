"""Stock counts over the API (ops): create a count with its lines, read it with its variance
report, confirm it into the stock ledger. Thin: every rule lives in inventory.counts."""

from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from oms.api import ModelPermissions, permission_required

from . import counts
from .models import StockCount


class CountLineInputSerializer(serializers.Serializer):
    sku = serializers.CharField(help_text="SKU code or barcode")
    counted = serializers.IntegerField(min_value=0)
    reason = serializers.CharField(required=False, allow_blank=True, max_length=255)


@extend_schema_field(CountLineInputSerializer(many=True))
class CountLinesField(serializers.ListField):
    """Any list: its items are checked by inventory.counts, all at once."""

    child = serializers.JSONField()


class CountInputSerializer(serializers.Serializer):
    """Only the envelope is checked here; the lines are checked by inventory.counts so that a
    bad count is refused whole with every bad line listed as {row, column, value, reason}."""

    warehouse = serializers.CharField(help_text="warehouse code")
    reference = serializers.CharField(required=False, allow_blank=True, default="")
    lines = CountLinesField(allow_empty=False)


class VarianceRowSerializer(serializers.Serializer):
    sku = serializers.CharField()
    name = serializers.CharField()
    system = serializers.IntegerField()
    counted = serializers.IntegerField()
    variance = serializers.IntegerField()
    reason = serializers.CharField()


class VarianceSummarySerializer(serializers.Serializer):
    lines = serializers.IntegerField()
    lines_with_variance = serializers.IntegerField()
    units_over = serializers.IntegerField()
    units_short = serializers.IntegerField()
    net = serializers.IntegerField()


class StockCountSerializer(serializers.ModelSerializer):
    """The count and its variance report. A draft's report previews against the current on
    hand (`final` false); a confirmed count's is what was written to the ledger."""

    warehouse = serializers.SlugRelatedField(slug_field="code", read_only=True)
    status = serializers.CharField(read_only=True, help_text="draft | confirmed")
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    confirmed_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    final = serializers.SerializerMethodField()
    summary = serializers.SerializerMethodField()
    variance = serializers.SerializerMethodField()

    class Meta:
        model = StockCount
        fields = ["id", "warehouse", "reference", "status", "created_at", "created_by",
                  "confirmed_at", "confirmed_by", "final", "summary", "variance"]
        read_only_fields = fields

    def _rows(self, count):
        cache = self.context.setdefault("_rows", {})
        if count.pk not in cache:
            cache[count.pk] = counts.variance_report(count)
        return cache[count.pk]

    def get_final(self, count) -> bool:
        return count.status == StockCount.State.CONFIRMED

    @extend_schema_field(VarianceSummarySerializer)
    def get_summary(self, count) -> dict:
        return counts.variance_summary(self._rows(count))

    @extend_schema_field(VarianceRowSerializer(many=True))
    def get_variance(self, count) -> list[dict]:
        return [row.as_dict() for row in self._rows(count)]


class StockCountListSerializer(serializers.ModelSerializer):
    warehouse = serializers.SlugRelatedField(slug_field="code", read_only=True)
    status = serializers.CharField(read_only=True, help_text="draft | confirmed")

    class Meta:
        model = StockCount
        fields = ["id", "warehouse", "reference", "status", "created_at", "confirmed_at"]
        read_only_fields = fields


class StockCountFilter(filters.FilterSet):
    warehouse = filters.CharFilter(field_name="warehouse__code", help_text="warehouse code")
    status = filters.CharFilter(help_text="draft | confirmed")

    class Meta:
        model = StockCount
        fields = ["warehouse", "status"]


class StockCountViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Stock counts (ops).

    `POST` {"warehouse": code, "reference", "lines": [{"sku": code or barcode, "counted",
    "reason"}]} creates a draft count (201). A count with any bad line is refused whole (400,
    `fields.lines` lists each bad line as {row, column, value, reason}).
    `POST <id>/confirm/` writes one adjustment movement per variance and returns the count
    with its final variance report; confirming twice or below reserved stock is 409."""

    queryset = StockCount.objects.select_related("warehouse", "created_by", "confirmed_by")
    permission_classes = [ModelPermissions]
    filterset_class = StockCountFilter

    def get_serializer_class(self):
        if self.action == "list":
            return StockCountListSerializer
        if self.action == "create":
            return CountInputSerializer
        return StockCountSerializer

    def get_permissions(self):
        if self.action == "confirm":
            return [permission_required("inventory.change_stockcount",
                                        "inventory.add_stockmovement")()]
        return super().get_permissions()

    @extend_schema(request=CountInputSerializer, responses={201: StockCountSerializer})
    def create(self, request):
        serializer = CountInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        count = counts.create_count(data["warehouse"], data["reference"], data["lines"],
                                    user=request.user)
        count = self.get_queryset().get(pk=count.pk)
        return Response(StockCountSerializer(count).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: StockCountSerializer})
    @action(detail=True, methods=["post"])
    def confirm(self, request, pk=None):
        count = self.get_object()
        counts.confirm_count(count.pk, user=request.user)
        return Response(StockCountSerializer(self.get_queryset().get(pk=count.pk)).data)
