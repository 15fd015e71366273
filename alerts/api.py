"""`/api/v1/alerts/` (CONTRACTS.md): the in-app list for ops, acknowledge and resolve."""

import django_filters
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from oms.api import ModelPermissions, permission_required

from . import services
from .models import Alert, AlertStatus


class AlertSerializer(serializers.ModelSerializer):
    rule = serializers.SlugRelatedField(slug_field="code", read_only=True)
    order_no = serializers.CharField(source="order.order_no", default=None, read_only=True, allow_null=True)
    assignee = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)

    class Meta:
        model = Alert
        fields = ["id", "rule", "severity", "subject", "title", "order_no", "opened_at", "status",
                  "assignee", "acknowledged_at", "escalated_at", "resolved_at", "resolve_note"]


class ResolveSerializer(serializers.Serializer):
    note = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")


class AlertFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=AlertStatus.choices)
    rule = django_filters.CharFilter(field_name="rule__code")
    order_no = django_filters.CharFilter(field_name="order__order_no")

    class Meta:
        model = Alert
        fields = ["status", "rule", "order_no", "severity"]


class AlertViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = Alert.objects.select_related("rule", "order", "assignee").order_by("-opened_at", "-id")
    serializer_class = AlertSerializer
    permission_classes = [ModelPermissions]
    filterset_class = AlertFilter
    lookup_value_regex = "[0-9]{1,18}"  # `null,null` or a number beyond bigint: 404, never int() on it

    @extend_schema(request=None, responses={200: AlertSerializer})
    @action(detail=True, methods=["post"], permission_classes=[permission_required("alerts.change_alert")])
    def acknowledge(self, request, pk=None):
        return Response(AlertSerializer(services.acknowledge(int(pk), request.user)).data)

    @extend_schema(request=ResolveSerializer, responses={200: AlertSerializer})
    @action(detail=True, methods=["post"], permission_classes=[permission_required("alerts.change_alert")])
    def resolve(self, request, pk=None):
        body = ResolveSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return Response(AlertSerializer(services.resolve(int(pk), request.user, body.validated_data["note"])).data)
