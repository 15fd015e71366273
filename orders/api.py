"""Order and warehouse-scanner API (CONTRACTS.md). Thin: validate, call a service, answer."""

import django_filters
from django.db import IntegrityError
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from oms.api import permission_required
from oms.errors import Conflict

from . import selectors, services
from .auth import DeviceTokenAuthentication, IsWarehouseDevice
from .devices import create_device
from .events import Actor
from .models import Fulfilment, Order, Status
from .scanning import apply_scanner_event
from .serializers import (
    DeviceSerializer,
    ManualOrderSerializer,
    NoteSerializer,
    OrderSerializer,
    ReasonSerializer,
    RouteSerializer,
    ScannerEventSerializer,
    TimelineSerializer,
    validate_scanner_event,
)


class OrderFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=Status.choices)
    fulfilment = django_filters.MultipleChoiceFilter(choices=Fulfilment.choices)
    channel = django_filters.CharFilter(field_name="channel__code")
    warehouse = django_filters.CharFilter(field_name="warehouse__code")
    placed_after = django_filters.IsoDateTimeFilter(field_name="placed_at", lookup_expr="gte")
    placed_before = django_filters.IsoDateTimeFilter(field_name="placed_at", lookup_expr="lt")
    external_order_id = django_filters.CharFilter()

    class Meta:
        model = Order
        fields = []


ACTION_PERMISSIONS = {
    "list": "orders.view_order",
    "retrieve": "orders.view_order",
    "timeline": "orders.view_order",
    "create": "orders.add_order",
    "approve": "orders.approve_order",
    "route": "orders.route_order",
    "cancel": "orders.cancel_order",
    "ship_request": "orders.request_shipment",
    "notes": "orders.add_order_note",
}


class OrderViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = OrderSerializer
    lookup_field = "order_no"
    lookup_value_regex = "[A-Za-z0-9-]+"
    filterset_class = OrderFilter

    def get_queryset(self):
        return selectors.order_list()

    def get_permissions(self):
        # OPTIONS ("metadata") and methods no action answers (405) need the read permission.
        return [permission_required(ACTION_PERMISSIONS.get(self.action, "orders.view_order"))()]

    def _reply(self, order_no: str, code=status.HTTP_200_OK) -> Response:
        return Response(OrderSerializer(selectors.order_detail(order_no)).data, status=code)

    @extend_schema(request=ManualOrderSerializer, responses={201: OrderSerializer})
    def create(self, request):
        """A manual order (phone, offline): the channel webhook body plus `channel`."""
        serializer = ManualOrderSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        channel = data.pop("channel")
        order, result = services.create_order(channel, data, Actor.for_user(request.user))
        return self._reply(order.order_no, status.HTTP_201_CREATED if result == "created" else 200)

    @extend_schema(request=None, responses=OrderSerializer)
    @action(detail=True, methods=["post"])
    def approve(self, request, order_no=None):
        services.approve_order(order_no, Actor.for_user(request.user))
        return self._reply(order_no)

    @extend_schema(request=RouteSerializer, responses=OrderSerializer)
    @action(detail=True, methods=["post"])
    def route(self, request, order_no=None):
        serializer = RouteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.route_order(order_no, serializer.validated_data["warehouse"], Actor.for_user(request.user),
                             share_number=serializer.validated_data.get("fulfilment_order"),
                             line_nos=serializer.validated_data.get("lines"))
        return self._reply(order_no)

    @extend_schema(request=ReasonSerializer, responses=OrderSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, order_no=None):
        serializer = ReasonSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.cancel_order(order_no, serializer.validated_data["reason"], Actor.for_user(request.user))
        return self._reply(order_no)

    @extend_schema(request=None, responses=OrderSerializer)
    @action(detail=True, methods=["post"], url_path="ship-request")
    def ship_request(self, request, order_no=None):
        """Ops' ship action: reaches `ship_requested`; `shipped` only follows the outbound scan."""
        services.request_shipment(order_no, Actor.for_user(request.user))
        return self._reply(order_no)

    @extend_schema(request=NoteSerializer, responses={201: None})
    @action(detail=True, methods=["post"])
    def notes(self, request, order_no=None):
        serializer = NoteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        event = services.add_note(order_no, serializer.validated_data["text"], Actor.for_user(request.user))
        return Response(
            {"order_no": order_no, "at": event.at, "actor": event.actor, "text": event.payload["text"]},
            status=status.HTTP_201_CREATED,
        )

    @extend_schema(responses=TimelineSerializer)
    @action(detail=True, methods=["get"])
    def timeline(self, request, order_no=None):
        order = selectors.get_order(order_no)
        return Response(selectors.as_json(selectors.timeline(order)))


class ScannerEventView(APIView):
    """Warehouse scanner events (device token): pick_started, pack_verified, outbound."""

    authentication_classes = [DeviceTokenAuthentication]
    permission_classes = [IsWarehouseDevice]

    @extend_schema(request=ScannerEventSerializer, responses={201: None, 200: None, 409: None})
    def post(self, request):
        device = request.user.warehouse_device
        reply = apply_scanner_event(device, validate_scanner_event(request.data))
        return Response(reply.body, status=reply.status_code)


class DeviceView(APIView):
    """Register a scanner bound to one warehouse; the token is shown once."""

    permission_classes = [permission_required("orders.manage_devices")]

    @extend_schema(request=DeviceSerializer, responses={201: None})
    def post(self, request):
        serializer = DeviceSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            device, token = create_device(
                serializer.validated_data["warehouse"], serializer.validated_data["name"]
            )
        except IntegrityError:
            raise Conflict("a user for this device name already exists") from None
        return Response(
            {"id": device.pk, "warehouse": device.warehouse.code, "name": device.name, "token": token},
            status=status.HTTP_201_CREATED,
        )
