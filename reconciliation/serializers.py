from rest_framework import serializers

from .jobs import import_status
from .models import (
    Discrepancy,
    DiscrepancyEvent,
    DiscrepancyStatus,
    FundVoucher,
    PaymentMatch,
    ReconciliationRun,
    Statement,
    StatementImport,
)


class StatementUploadSerializer(serializers.Serializer):
    file = serializers.FileField()
    account = serializers.CharField(max_length=64)
    profile = serializers.CharField(max_length=32, required=False, allow_blank=True)
    provider = serializers.CharField(max_length=40, required=False, allow_blank=True)


class StatementSerializer(serializers.ModelSerializer):
    class Meta:
        model = Statement
        fields = ["id", "account", "profile", "provider", "filename", "encoding", "lines",
                  "period_start", "period_end", "total_in", "total_out", "checksum", "imported_at"]


class VoucherSerializer(serializers.ModelSerializer):
    order_no = serializers.SerializerMethodField()
    reverses = serializers.SlugRelatedField(slug_field="transaction_no", read_only=True, allow_null=True)

    class Meta:
        model = FundVoucher
        fields = ["transaction_no", "provider", "order_no", "kind", "amount", "currency",
                  "occurred_at", "received_at", "status", "check_reason", "reverses", "reason"]

    def get_order_no(self, voucher) -> str:
        return voucher.order.order_no if voucher.order_id else voucher.order_no


class ReversalSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=255)


class AcceptanceSerializer(serializers.Serializer):
    note = serializers.CharField(max_length=2000)


class RunRequestSerializer(serializers.Serializer):
    date = serializers.DateField(required=False)
    period_start = serializers.DateField(required=False)
    period_end = serializers.DateField(required=False)

    def validate(self, data):
        if "date" in data:
            if "period_start" in data or "period_end" in data:
                raise serializers.ValidationError({"date": ["give either date or a period, not both"]})
            return {"start": data["date"], "end": data["date"]}
        missing = {f: ["required without date"] for f in ("period_start", "period_end") if f not in data}
        if missing:
            raise serializers.ValidationError(missing)
        if data["period_end"] < data["period_start"]:
            raise serializers.ValidationError({"period_end": ["before period_start"]})
        if (data["period_end"] - data["period_start"]).days > 92:
            raise serializers.ValidationError({"period_end": ["a run covers at most 93 days"]})
        return {"start": data["period_start"], "end": data["period_end"]}


class RunSerializer(serializers.ModelSerializer):
    class Meta:
        model = ReconciliationRun
        fields = ["id", "period_start", "period_end", "trigger", "state", "vouchers",
                  "statement_lines", "matched", "counts", "error", "started_at", "finished_at"]


class DiscrepancyEventSerializer(serializers.ModelSerializer):
    user = serializers.StringRelatedField(allow_null=True)

    class Meta:
        model = DiscrepancyEvent
        fields = ["at", "user", "from_status", "to_status", "assignee", "note"]


class DiscrepancySerializer(serializers.ModelSerializer):
    assignee = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    suggested_voucher = serializers.SlugRelatedField(slug_field="transaction_no", read_only=True, allow_null=True)
    history = DiscrepancyEventSerializer(many=True, read_only=True)

    class Meta:
        model = Discrepancy
        fields = ["id", "kind", "status", "business_date", "transaction_no", "order_no",
                  "channel_code", "expected", "actual", "difference", "assignee",
                  "suggested_voucher", "detail", "created_at", "updated_at", "history"]


class DiscrepancyUpdateSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=DiscrepancyStatus.choices, required=False)
    note = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")
    assignee = serializers.CharField(max_length=150, required=False, allow_blank=True)


class PaymentMatchSerializer(serializers.ModelSerializer):
    transaction_no = serializers.CharField(source="voucher.transaction_no")
    amount = serializers.DecimalField(source="voucher.amount", max_digits=14, decimal_places=2)
    order_no = serializers.CharField(source="order.order_no")

    class Meta:
        model = PaymentMatch
        fields = ["id", "transaction_no", "amount", "order_no", "state", "reason", "created_at",
                  "decided_at"]


class StatementImportSerializer(serializers.ModelSerializer):
    """A file imported by a worker: its state, progress and outcome (the statement, or every
    bad row up to 500)."""

    progress = serializers.SerializerMethodField()
    statement = StatementSerializer(read_only=True, allow_null=True)

    class Meta:
        model = StatementImport
        fields = ["id", "state", "account", "profile", "provider", "filename", "size", "attempts",
                  "progress", "statement", "detail", "bad_rows", "rows", "submitted_at", "started_at",
                  "finished_at"]

    def get_progress(self, job) -> dict[str, int]:
        status = import_status(job)
        return {"done": status["done"], "total": status["total"]}
