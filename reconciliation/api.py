"""Finance API (CONTRACTS.md): statements, vouchers, runs, discrepancies, payment matches."""

import django_filters
from django.conf import settings
from django.db.models import Q
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from oms.api import ModelPermissions, permission_required

from . import discrepancies, jobs, paid_check, vouchers
from .importing import MULTIPART_SLACK, StatementRejected, import_statement, refuse_oversized
from .matching import run_reconciliation
from .models import (
    Discrepancy,
    FundVoucher,
    PaymentMatch,
    ReconciliationRun,
    Statement,
    StatementImport,
)
from .serializers import (
    AcceptanceSerializer,
    DiscrepancySerializer,
    DiscrepancyUpdateSerializer,
    PaymentMatchSerializer,
    ReversalSerializer,
    RunRequestSerializer,
    RunSerializer,
    StatementImportSerializer,
    StatementSerializer,
    StatementUploadSerializer,
    VoucherSerializer,
)


class StatementViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                       viewsets.GenericViewSet):
    """`POST /api/v1/reconciliation/statements/` multipart `file`, `account`, optional
    `profile` and `provider`: all or nothing, 400 lists every bad row, 409 when already imported."""

    queryset = Statement.objects.order_by("-imported_at")
    serializer_class = StatementSerializer
    permission_classes = [ModelPermissions]
    parser_classes = [MultiPartParser, FormParser]
    filterset_fields = ["account", "profile"]

    @extend_schema(request=StatementUploadSerializer,
                   responses={201: StatementSerializer, 202: StatementImportSerializer})
    def create(self, request):
        """Files up to OMS_STATEMENT_INLINE_BYTES are imported in the request (201); larger ones
        are handed to a worker (202 with the import, `Location` to follow its progress)."""
        # Refused before the body is parsed: a too-large upload is never spooled whole.
        refuse_oversized(int(request.META.get("CONTENT_LENGTH") or 0) - MULTIPART_SLACK)
        form = StatementUploadSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        upload = form.validated_data["file"]
        refuse_oversized(upload.size)
        given = {"account": form.validated_data["account"], "filename": upload.name,
                 "provider": form.validated_data.get("provider", ""), "user": request.user}
        if upload.size > settings.OMS_STATEMENT_INLINE_BYTES:
            job = jobs.submit_import(upload.read(), profile=form.validated_data.get("profile", ""), **given)
            location = reverse("api:statement-import-detail", args=[job.pk])
            return Response(StatementImportSerializer(job).data, status=status.HTTP_202_ACCEPTED,
                            headers={"Location": location})
        try:
            statement = import_statement(upload.read(), profile=form.validated_data.get("profile") or None, **given)
        except StatementRejected as exc:
            return Response({"error": "validation", "fields": {"file": [exc.detail]}, "detail": exc.detail,
                             "rows": exc.rows}, status=status.HTTP_400_BAD_REQUEST)
        return Response(StatementSerializer(statement).data, status=status.HTTP_201_CREATED)


class StatementImportViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """`GET /api/v1/reconciliation/imports/<id>/`: a worker's import of a large statement file."""

    queryset = StatementImport.objects.select_related("statement").defer("data").order_by("-id")
    serializer_class = StatementImportSerializer
    permission_classes = [ModelPermissions]
    filterset_fields = ["account", "state"]


class VoucherFilter(django_filters.FilterSet):
    order_no = django_filters.CharFilter(method="by_order_no")
    transaction_no = django_filters.CharFilter()
    status = django_filters.ChoiceFilter(choices=FundVoucher._meta.get_field("status").choices)

    class Meta:
        model = FundVoucher
        fields = ["order_no", "transaction_no", "status", "provider", "kind"]

    def by_order_no(self, queryset, name, value):
        return queryset.filter(Q(order__order_no=value) | Q(order_no=value))


class VoucherViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = FundVoucher.objects.select_related("order", "reverses").order_by("-occurred_at", "-id")
    serializer_class = VoucherSerializer
    permission_classes = [ModelPermissions]
    filterset_class = VoucherFilter
    lookup_field = "transaction_no"
    lookup_value_regex = "[^/]+"

    @extend_schema(request=ReversalSerializer, responses={201: VoucherSerializer})
    @action(detail=True, methods=["post"],
            permission_classes=[permission_required("reconciliation.reverse_fundvoucher")])
    def reverse(self, request, transaction_no=None):
        body = ReversalSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        reversal = vouchers.reverse_voucher(transaction_no, body.validated_data["reason"], request.user)
        return Response(VoucherSerializer(reversal).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=AcceptanceSerializer, responses={200: VoucherSerializer})
    @action(detail=True, methods=["post"],
            permission_classes=[permission_required("reconciliation.change_fundvoucher")])
    def accept(self, request, transaction_no=None):
        body = AcceptanceSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        voucher = vouchers.accept_voucher(transaction_no, request.user, body.validated_data["note"])
        return Response(VoucherSerializer(voucher).data)


class RunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = ReconciliationRun.objects.order_by("-id")
    serializer_class = RunSerializer
    permission_classes = [ModelPermissions]
    filterset_fields = ["state", "trigger"]

    @extend_schema(request=RunRequestSerializer, responses={201: RunSerializer})
    def create(self, request):
        body = RunRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        run = run_reconciliation(body.validated_data["start"], body.validated_data["end"],
                                 ReconciliationRun.Trigger.MANUAL, request.user)
        return Response(RunSerializer(run).data, status=status.HTTP_201_CREATED)


class DiscrepancyFilter(django_filters.FilterSet):
    run = django_filters.NumberFilter(method="by_run")

    class Meta:
        model = Discrepancy
        fields = ["run", "kind", "status", "channel_code", "business_date"]

    def by_run(self, queryset, name, value):
        return queryset.filter(Q(first_run=value) | Q(last_run=value))


class DiscrepancyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = (Discrepancy.objects.select_related("assignee", "suggested_voucher")
                .prefetch_related("history__user").order_by("-business_date", "-id"))
    serializer_class = DiscrepancySerializer
    permission_classes = [ModelPermissions]
    filterset_class = DiscrepancyFilter
    lookup_value_regex = "[0-9]{1,18}"  # anything else is a 404, never int() on it

    @extend_schema(request=DiscrepancyUpdateSerializer, responses={200: DiscrepancySerializer})
    def partial_update(self, request, pk=None):
        body = DiscrepancyUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        updated = discrepancies.update_discrepancy(int(pk), request.user, **body.validated_data)
        return Response(DiscrepancySerializer(self.get_queryset().get(pk=updated.pk)).data)


class PaymentMatchViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """The pending-confirmation pool of "paid but no record": confirm or reject in one click."""

    queryset = PaymentMatch.objects.select_related("voucher", "order").order_by("-id")
    serializer_class = PaymentMatchSerializer
    permission_classes = [ModelPermissions]
    filterset_fields = ["state"]
    lookup_value_regex = "[0-9]{1,18}"  # anything else is a 404, never int() on it

    @extend_schema(request=None, responses={200: PaymentMatchSerializer})
    @action(detail=True, methods=["post"],
            permission_classes=[permission_required("reconciliation.change_paymentmatch")])
    def confirm(self, request, pk=None):
        return Response(PaymentMatchSerializer(paid_check.decide_match(int(pk), True, request.user)).data)

    @extend_schema(request=None, responses={200: PaymentMatchSerializer})
    @action(detail=True, methods=["post"],
            permission_classes=[permission_required("reconciliation.change_paymentmatch")])
    def reject(self, request, pk=None):
        return Response(PaymentMatchSerializer(paid_check.decide_match(int(pk), False, request.user)).data)
