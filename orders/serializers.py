import re
import uuid
from decimal import Decimal

from rest_framework import serializers

from channels.models import MANUAL_CHANNEL_CODE, Channel
from inventory.models import SKU

from .ciphertext import platform_ciphertext
from .identity import mask_phone
from .models import FulfilmentLine, FulfilmentOrder, Order, OrderLine, Shipment
from .scanning import EVENT_TYPES, OUTBOUND, PACK_VERIFIED
from .services import order_amounts

MONEY = {"max_digits": 14, "decimal_places": 2, "min_value": Decimal("0")}


class PartySerializer(serializers.Serializer):
    # Room for a platform's ciphertext (orders.ciphertext), kept as sent for its decrypt call.
    name = serializers.CharField(max_length=255)
    phone = serializers.CharField(max_length=255)


class ReceiverSerializer(PartySerializer):
    province = serializers.CharField(max_length=32)
    city = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    district = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    address = serializers.CharField(max_length=255)


class SkuField(serializers.SlugRelatedField):
    """An SKU by code. A caller that has loaded the SKUs already (channel intake, a page at a
    time) passes them as context["skus"] (code → SKU): no query per line then."""

    def to_internal_value(self, data):
        if isinstance(data, str) and ("\x00" in data or len(data) > 64):
            # Never sent to the database: PostgreSQL refuses a NUL byte in a text parameter.
            self.fail("does_not_exist", slug_name=self.slug_field, value=data[:64].replace("\x00", "\\x00"))
        sku = (self.context.get("skus") or {}).get(data) if isinstance(data, str) else None
        return sku if sku is not None else super().to_internal_value(data)


class LineInputSerializer(serializers.Serializer):
    sku = SkuField(slug_field="code", queryset=SKU.objects.all())
    quantity = serializers.IntegerField(min_value=1, max_value=100000)
    unit_price = serializers.DecimalField(**MONEY)
    discount = serializers.DecimalField(**MONEY, default=Decimal("0"))
    external_line_id = serializers.CharField(max_length=64, required=False, default="")


class OrderInputSerializer(serializers.Serializer):
    """The order body of CONTRACTS.md (channel webhook and manual entry)."""

    external_order_id = serializers.CharField(max_length=64)
    status = serializers.ChoiceField(
        choices=["pending_payment", "paid", "cancelled", "refunded"], default="pending_payment"
    )
    placed_at = serializers.DateTimeField(required=False)
    paid_at = serializers.DateTimeField(required=False)
    currency = serializers.RegexField(r"^[A-Z]{3}$", default="CNY")
    buyer = PartySerializer(required=False)
    receiver = ReceiverSerializer()
    lines = LineInputSerializer(many=True, allow_empty=False)
    shipping_fee = serializers.DecimalField(**MONEY, default=Decimal("0"))
    discount_total = serializers.DecimalField(**MONEY, default=Decimal("0"))
    payable = serializers.DecimalField(**MONEY)

    def validate(self, data):
        expected = order_amounts(data)["expected_payable"]
        if expected != data["payable"]:
            raise serializers.ValidationError({
                "payable": [
                    f"{data['payable']} does not equal lines − discounts + shipping = {expected}"
                ]
            })
        if data.get("placed_at") and data.get("paid_at") and data["paid_at"] < data["placed_at"]:
            raise serializers.ValidationError({"paid_at": ["is before placed_at"]})
        return data


class ChannelReceiverSerializer(serializers.Serializer):
    # Room for a platform's ciphertext (orders.ciphertext), kept as sent for its decrypt call.
    name = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    phone = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    province = serializers.CharField(max_length=32, required=False, allow_blank=True, default="")
    city = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    district = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    address = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")


class ChannelOrderSerializer(OrderInputSerializer):
    """What a channel sends: a missing receiver field or amounts that do not add up are reasons
    to hold the order, not to refuse it (channels.intake decides)."""

    receiver = ChannelReceiverSerializer()
    buyer = ChannelReceiverSerializer(required=False)
    status = serializers.ChoiceField(
        choices=["pending_payment", "paid", "cancelled", "refunded"], allow_null=True,
        default="pending_payment",
    )

    def validate(self, data):
        if data.get("placed_at") and data.get("paid_at") and data["paid_at"] < data["placed_at"]:
            raise serializers.ValidationError({"paid_at": ["is before placed_at"]})
        return data


class ManualOrderSerializer(OrderInputSerializer):
    channel = serializers.SlugRelatedField(
        slug_field="code", queryset=Channel.objects.filter(active=True), required=False
    )
    external_order_id = serializers.CharField(max_length=64, required=False)

    def validate(self, data):
        data = super().validate(data)
        if "channel" not in data:
            data["channel"] = Channel.objects.get(code=MANUAL_CHANNEL_CODE)
        data.setdefault("external_order_id", f"M-{uuid.uuid4().hex[:16]}")
        return data


class OrderLineSerializer(serializers.ModelSerializer):
    sku = serializers.CharField(source="sku.code")
    barcode = serializers.CharField(source="sku.barcode")
    name = serializers.CharField(source="sku.name")

    class Meta:
        model = OrderLine
        fields = ["line_no", "sku", "barcode", "name", "quantity", "unit_price", "discount"]


class ShipmentSerializer(serializers.ModelSerializer):
    warehouse = serializers.CharField(source="warehouse.code")
    fulfilment_order = serializers.SerializerMethodField()

    class Meta:
        model = Shipment
        fields = ["carrier", "tracking_no", "outbound_at", "warehouse", "fulfilment_order"]

    def get_fulfilment_order(self, shipment) -> int | None:
        return shipment.fulfilment_order.number if shipment.fulfilment_order_id else None


class FulfilmentLineSerializer(serializers.ModelSerializer):
    line_no = serializers.IntegerField(source="order_line.line_no")
    sku = serializers.CharField(source="order_line.sku.code")

    class Meta:
        model = FulfilmentLine
        fields = ["line_no", "sku", "quantity"]


class FulfilmentOrderSerializer(serializers.ModelSerializer):
    """A warehouse's share of the order, with its own physical track."""

    code = serializers.CharField()
    warehouse = serializers.CharField(source="warehouse.code")
    lines = FulfilmentLineSerializer(many=True)
    allowed = serializers.SerializerMethodField()

    class Meta:
        model = FulfilmentOrder
        fields = ["number", "code", "warehouse", "status", "allowed", "lines", "created_at",
                  "picking_started_at", "packed_at", "outbound_at", "delivered_at", "returned_at",
                  "cancelled_at", "cancel_reason", "last_scan_at", "last_location"]

    def get_allowed(self, share) -> list[str]:
        return sorted(t.name for t in share.get_available_status_transitions())


class OrderSerializer(serializers.ModelSerializer):
    channel = serializers.CharField(source="channel.code")
    warehouse = serializers.CharField(source="warehouse.code", allow_null=True, default=None)
    receiver = serializers.SerializerMethodField()
    lines = OrderLineSerializer(many=True)
    shipments = ShipmentSerializer(many=True)
    fulfilment_orders = FulfilmentOrderSerializer(many=True)

    class Meta:
        model = Order
        fields = [
            "order_no", "channel", "external_order_id", "status", "fulfilment", "warehouse",
            "currency", "goods_amount", "shipping_fee", "discount_amount", "payable_amount",
            "buyer_name", "receiver", "hold_reason", "cancel_reason", "last_location",
            "placed_at", "paid_at", "approved_at", "ship_requested_at", "picking_started_at",
            "packed_at", "physical_outbound_at", "shipped_at", "delivered_at", "completed_at",
            "cancelled_at", "status_changed_at", "refund_due", "refunded_amount", "lines", "shipments",
            "fulfilment_orders",
        ]

    def get_receiver(self, order) -> dict:
        """A platform's ciphertext is never shown as if it were an address: blank, and named in
        `encrypted` (the order is on hold until it is decrypted)."""
        raw = {"name": order.receiver_name, "phone": order.receiver_phone, "province": order.receiver_province,
               "city": order.receiver_city, "district": order.receiver_district, "address": order.receiver_address}
        encrypted = [name for name, value in raw.items() if platform_ciphertext(value)]
        shown = {name: "" if name in encrypted else value for name, value in raw.items()}
        if "phone" not in encrypted:
            shown["phone"] = mask_phone(order.receiver_phone) or order.receiver_phone
        return {**shown, "encrypted": encrypted}


class RouteSerializer(serializers.Serializer):
    warehouse = serializers.CharField(max_length=32)
    fulfilment_order = serializers.IntegerField(
        min_value=1, max_value=32767, required=False,
        help_text="Route only this share of the order (its number).")
    lines = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=32767), required=False, allow_empty=False,
        max_length=1000, help_text="With fulfilment_order: only these line numbers of it (a split by hand).")

    def validate(self, data):
        if data.get("lines") and not data.get("fulfilment_order"):
            raise serializers.ValidationError({"lines": ["name the fulfilment_order the lines are split from"]})
        return data


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500)


class NoteSerializer(serializers.Serializer):
    text = serializers.CharField(max_length=2000)


class ScanItemSerializer(serializers.Serializer):
    barcode = serializers.CharField(max_length=64)
    quantity = serializers.IntegerField(min_value=1, max_value=100000)


TRACKING_NO = r"^[A-Za-z0-9-]{4,64}$"


class ScannerEventSerializer(serializers.Serializer):
    event_id = serializers.UUIDField()
    order_no = serializers.CharField(max_length=32)
    type = serializers.ChoiceField(choices=EVENT_TYPES)
    scanned_at = serializers.DateTimeField()
    station = serializers.CharField(max_length=64, required=False, default="")
    operator = serializers.CharField(max_length=64, required=False, default="")
    items = ScanItemSerializer(many=True, required=False)
    carrier = serializers.CharField(max_length=32, required=False)
    tracking_no = serializers.RegexField(TRACKING_NO, required=False)

    def validate(self, data):
        errors = {}
        if data["type"] == PACK_VERIFIED and not data.get("items"):
            errors["items"] = ["required for pack_verified: every scanned barcode and quantity"]
        if data["type"] == OUTBOUND:
            for field in ("carrier", "tracking_no"):
                if not data.get(field):
                    errors[field] = ["required for outbound"]
        if errors:
            raise serializers.ValidationError(errors)
        return data


def validate_scanner_event(data) -> dict:
    """ScannerEventSerializer's validated data for `data`, or its 400.

    A scanner posts the same well-formed shape many times a second, and building the serializer
    costs more CPU than the rest of the request's Python. So the plain case is checked here by
    the serializer's own rules; anything this check is not sure of — any error, any lenient
    coercion (a number for a string, "1" for 1) — goes through the serializer, whose answer and
    error messages stay the contract's. orders/tests/test_scanner_hot_path.py holds the two to the
    same results."""
    event = _plain_scanner_event(data)
    if event is None:
        serializer = ScannerEventSerializer(data=data)
        serializer.is_valid(raise_exception=True)
        event = serializer.validated_data
    return event


# What DRF's CharField refuses after trimming: NUL and lone surrogates.
_NOT_TEXT = re.compile("[\x00\ud800-\udfff]")
_TRACKING_NO = re.compile(TRACKING_NO)
_SCANNED_AT = serializers.DateTimeField()


def _text(value, max_length: int) -> str | None:
    if type(value) is not str:
        return None
    value = value.strip()
    if not value or len(value) > max_length or _NOT_TEXT.search(value):
        return None
    return value


def _plain_scanner_event(data) -> dict | None:
    """The validated data, exactly as ScannerEventSerializer gives it (same keys, order and
    values), when `data` is plainly valid; None when the serializer must decide."""
    if type(data) is not dict:
        return None
    event_id, kind, scanned_at = data.get("event_id"), data.get("type"), data.get("scanned_at")
    if type(event_id) is not str or type(kind) is not str or kind not in EVENT_TYPES \
            or type(scanned_at) is not str:
        return None
    try:
        event = {"event_id": uuid.UUID(hex=event_id)}
        event["order_no"] = _text(data.get("order_no"), 32)
        event["type"] = kind
        event["scanned_at"] = _SCANNED_AT.to_internal_value(scanned_at)
    except (ValueError, serializers.ValidationError):
        return None
    for name in ("station", "operator"):
        event[name] = _text(data[name], 64) if name in data else ""
    if event["order_no"] is None or event["station"] is None or event["operator"] is None:
        return None
    if "items" in data:
        items = data["items"]
        if type(items) is not list:
            return None
        event["items"] = []
        for item in items:
            if type(item) is not dict:
                return None
            barcode, quantity = _text(item.get("barcode"), 64), item.get("quantity")
            if barcode is None or type(quantity) is not int or not 1 <= quantity <= 100000:
                return None
            event["items"].append({"barcode": barcode, "quantity": quantity})
    if "carrier" in data:
        event["carrier"] = _text(data["carrier"], 32)
        if event["carrier"] is None:
            return None
    if "tracking_no" in data:
        event["tracking_no"] = _text(data["tracking_no"], 64)
        if event["tracking_no"] is None or not _TRACKING_NO.search(event["tracking_no"]):
            return None
    if kind == PACK_VERIFIED and not event.get("items"):
        return None
    if kind == OUTBOUND and not (event.get("carrier") and event.get("tracking_no")):
        return None
    return event


class DeviceSerializer(serializers.Serializer):
    warehouse = serializers.CharField(max_length=32)
    name = serializers.CharField(max_length=64)


class TimelineStageSerializer(serializers.Serializer):
    stage = serializers.CharField()
    entered_at = serializers.DateTimeField()
    left_at = serializers.DateTimeField(allow_null=True)
    duration_seconds = serializers.IntegerField()
    current = serializers.BooleanField()


class TimelineEntrySerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    track = serializers.CharField()
    kind = serializers.CharField()
    actor = serializers.CharField()
    from_state = serializers.CharField()
    to_state = serializers.CharField()
    summary = serializers.CharField()
    data = serializers.JSONField()


class BlockingSerializer(serializers.Serializer):
    stage = serializers.CharField()
    since = serializers.DateTimeField()
    duration_seconds = serializers.IntegerField()
    expected_seconds = serializers.IntegerField()
    waiting_for = serializers.CharField()
    fulfilment = serializers.CharField()
    last_location = serializers.CharField(allow_null=True)
    last_event_at = serializers.DateTimeField(allow_null=True)


class TimelineSerializer(serializers.Serializer):
    order_no = serializers.CharField()
    status = serializers.CharField()
    fulfilment = serializers.CharField()
    customer_track = TimelineStageSerializer(many=True)
    system_log = TimelineEntrySerializer(many=True)
    blocking = BlockingSerializer(allow_null=True)
