"""Channel master data and the generic signed webhook (CONTRACTS.md)."""

import json

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.parsers import BaseParser
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from oms import signing
from oms.api import MAX_PUSH_BODY, ModelPermissions, PayloadTooLarge, permission_required
from oms.errors import Invalid, NotFound
from oms.throttling import rejection_allowed

from . import deliveries, intake
from .models import Channel, ChannelKind, RawPayload
from .schedules import ensure_pull_schedule
from .selectors import duplicates_report


class ChannelSerializer(serializers.ModelSerializer):
    class Meta:
        model = Channel
        fields = ["code", "name", "kind", "order_prefix", "active", "reserve_on",
                  "pending_reservation_minutes", "allow_split", "api_base_url",
                  "pull_interval_seconds", "pull_overlap_seconds", "sync_cursor", "signature_version"]
        read_only_fields = ["sync_cursor"]
        extra_kwargs = {"order_prefix": {"required": False}}

    def validate_signature_version(self, value):
        if value != 2 and (self.instance is None or self.instance.signature_version != value):
            raise serializers.ValidationError("a channel can only move to signature version 2")
        return value

    def validate_kind(self, value):
        if value not in ChannelKind.values:
            raise serializers.ValidationError(f"one of {', '.join(ChannelKind.values)}")
        return value


class ChannelCreatedSerializer(ChannelSerializer):
    class Meta(ChannelSerializer.Meta):
        fields = [*ChannelSerializer.Meta.fields, "webhook_secret"]


class ChannelViewSet(viewsets.ModelViewSet):
    """Channels (ops). Creating one returns its `webhook_secret`, once."""

    queryset = Channel.objects.all()
    serializer_class = ChannelSerializer
    permission_classes = [ModelPermissions]
    lookup_field = "code"
    filterset_fields = ["kind", "active"]
    http_method_names = ["get", "post", "patch", "head", "options"]

    @extend_schema(responses={201: ChannelCreatedSerializer})
    def create(self, request, *args, **kwargs):
        serializer = ChannelSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        channel = serializer.save()
        ensure_pull_schedule(channel)
        return Response(ChannelCreatedSerializer(channel).data, status=status.HTTP_201_CREATED)

    def perform_update(self, serializer):
        ensure_pull_schedule(serializer.save())


class RawBodyParser(BaseParser):
    """Keeps the exact bytes: the signature is over the raw body, and a malformed body is
    still archived for replay. Never more than 1 MB is read (413 beyond, CONTRACTS.md)."""

    media_type = "*/*"

    def parse(self, stream, media_type=None, parser_context=None):
        if stream is None:
            return b""
        body = stream.read(MAX_PUSH_BODY + 1)
        if len(body) > MAX_PUSH_BODY:
            raise PayloadTooLarge(f"the body is over {MAX_PUSH_BODY} bytes")
        return body


class DeliverySerializer(serializers.Serializer):
    delivery = serializers.CharField()
    result = serializers.ChoiceField(["accepted", "created", "updated", "unchanged", "merged", "held", "failed"])
    order_no = serializers.CharField(allow_null=True)
    reasons = serializers.ListField(child=serializers.CharField())


class WebhookView(APIView):
    """`POST /api/v1/channels/<code>/webhook/` — signed with the channel's webhook secret by
    signature version 2 (`X-OMS-Timestamp` + `X-OMS-Signature`, oms.signing), or version 1 for a
    channel created before it."""

    authentication_classes = []
    permission_classes = [AllowAny]  # authenticated by the signature below
    parser_classes = [RawBodyParser]

    @extend_schema(request=None, responses={202: DeliverySerializer, 400: None, 401: None, 404: None, 413: None,
                                            429: None})
    def post(self, request, code):
        channel = Channel.objects.filter(code=code, active=True).first()
        if channel is None:
            self.count_rejection(request)  # probing for channel codes is refused like a forgery
            raise NotFound(f"no active channel {code}")
        declared = request.META.get("CONTENT_LENGTH") or "0"
        if declared.isdigit() and int(declared) > MAX_PUSH_BODY:  # refused before it is read
            raise PayloadTooLarge(f"the body is {declared} bytes; at most {MAX_PUSH_BODY} are taken")
        body = request.data if isinstance(request.data, bytes) else b""
        reason = signing.refusal(channel.webhook_secret, body, request.headers, version=channel.signature_version)
        if reason:
            self.count_rejection(request)
            return Response({"error": "unauthenticated", "detail": reason}, status=status.HTTP_401_UNAUTHORIZED)
        try:
            raw = json.loads(body)
            if not isinstance(raw, dict):
                raise ValueError("the body must be a JSON object")
        except RecursionError:
            exc = ValueError("the JSON is nested too deep")
            payload = intake.archive(channel, body, "webhook")
            intake._finish(payload, "invalid", [f"body: {exc}"])
            return Response({"error": "validation", "fields": {"body": [str(exc)]}},
                            status=status.HTTP_400_BAD_REQUEST)
        except ValueError as exc:
            payload = intake.archive(channel, body, "webhook")
            intake._finish(payload, "invalid", [f"body: {exc}"])
            return Response({"error": "validation", "fields": {"body": [str(exc)]}},
                            status=status.HTTP_400_BAD_REQUEST)
        payload = deliveries.accept(channel, body)
        wait = deliveries.requested_wait(request.headers.get("Prefer", ""))
        if wait:
            payload = deliveries.wait_for(payload, wait)
        return Response(deliveries.outcome(payload), status=status.HTTP_202_ACCEPTED)

    def count_rejection(self, request):
        """Past `callback_rejection` refusals from this address (oms.throttling): 429 instead."""
        allowed, wait = rejection_allowed(request)
        if not allowed:
            self.throttled(request, wait)


class DeliveryView(APIView):
    """`GET /api/v1/channels/<code>/deliveries/<id>/`: a webhook delivery's outcome."""

    permission_classes = [permission_required("channels.view_rawpayload")]

    @extend_schema(responses={200: DeliverySerializer})
    def get(self, request, code, delivery):
        payload = RawPayload.objects.filter(pk=delivery, channel__code=code, source="webhook").first()
        if payload is None:
            raise NotFound(f"no delivery {delivery} of channel {code}")
        return Response(deliveries.outcome(payload))


class DuplicatesHourSerializer(serializers.Serializer):
    channel = serializers.CharField()
    hour = serializers.DateTimeField()
    duplicates = serializers.IntegerField()


class DuplicatesSkuSerializer(serializers.Serializer):
    sku = serializers.CharField()
    orders = serializers.IntegerField()


class DuplicatesReportSerializer(serializers.Serializer):
    since = serializers.DateTimeField()
    per_channel_hour = DuplicatesHourSerializer(many=True)
    top_skus = DuplicatesSkuSerializer(many=True)


class DuplicatesReportView(APIView):
    """Unpaid duplicates merged as sub-orders: per channel per hour, and the SKUs involved."""

    permission_classes = [permission_required("orders.view_order")]

    @extend_schema(parameters=[OpenApiParameter("hours", int, description="look back (default 24, max 720)")],
                   responses=DuplicatesReportSerializer)
    def get(self, request):
        try:
            hours = int(request.query_params.get("hours", 24))
        except ValueError:
            hours = 0
        if not 1 <= hours <= 720:
            raise Invalid({"hours": ["a whole number of hours from 1 to 720"]})
        return Response(duplicates_report(hours))
