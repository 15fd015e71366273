"""Schema drift of the channels (ops): `GET /api/v1/channels/drift/?channel=&acknowledged=`
and `POST /api/v1/channels/drift/<id>/acknowledge/`."""

import django_filters
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from oms.api import ModelPermissions, permission_required

from . import drift
from .models import SchemaDrift


class SchemaDriftSerializer(serializers.ModelSerializer):
    channel = serializers.SlugRelatedField(slug_field="code", read_only=True)
    acknowledged_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)

    class Meta:
        model = SchemaDrift
        fields = ["id", "channel", "kind", "path", "old_type", "new_type", "change_set", "payload",
                  "example", "detected_at", "acknowledged_at", "acknowledged_by"]
        read_only_fields = fields


class SchemaDriftFilter(django_filters.FilterSet):
    channel = django_filters.CharFilter(field_name="channel__code", label=_("channel code"))
    acknowledged = django_filters.BooleanFilter(field_name="acknowledged_at", lookup_expr="isnull",
                                                exclude=True, label=_("acknowledged"))

    class Meta:
        model = SchemaDrift
        fields = ["channel", "kind", "acknowledged"]


class SchemaDriftViewSet(viewsets.ReadOnlyModelViewSet):
    """What changed in what each channel sends, newest first; `acknowledged=false` for the
    open ones. Acknowledging a `new` or `retyped` drift makes the field known."""

    queryset = SchemaDrift.objects.select_related("channel", "acknowledged_by")
    serializer_class = SchemaDriftSerializer
    permission_classes = [ModelPermissions]
    filterset_class = SchemaDriftFilter

    @extend_schema(request=None, responses={200: SchemaDriftSerializer})
    @action(detail=True, methods=["post"],
            permission_classes=[permission_required("channels.view_schemadrift", "channels.change_schemadrift")])
    def acknowledge(self, request, pk=None):
        found = self.get_object()
        drift.acknowledge([found], request.user)
        found.refresh_from_db()
        return Response(SchemaDriftSerializer(found).data)
