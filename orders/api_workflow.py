"""Approvals and exception cases API (CONTRACTS.md "Alerts and exceptions"). Thin: validate,
call orders.approvals / orders.cases, answer.

* `GET /api/v1/approvals/?status=&order_no=`: users holding `orders.view_approvaltask` (ops,
  customer service) see every task; any other user sees the tasks they may decide.
* `POST /api/v1/approvals/<id>/approve/` and `/reject/` `{"note"}` (reject needs a note): the
  task's approvers only (403 otherwise, 409 once decided).
* `POST /api/v1/orders/<order_no>/override-approval/` `{"reason"}`: `orders.override_approval`.
* `GET /api/v1/exceptions/?status=&category=` (category: a stage or a kind) and
  `POST /api/v1/exceptions/<id>/close/` `{"root_cause"}` (400 without one).

Choice fields are answered as plain strings (their values are listed in the field help).
"""

from datetime import date, datetime, time, timedelta

import django_filters
from django.db.models import Q
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from oms.api import ModelPermissions, permission_required
from oms.errors import Invalid

from . import approvals, cases, selectors
from .models import (
    ApprovalLevel,
    ApprovalStatus,
    ApprovalTask,
    CaseKind,
    CaseStage,
    CaseStatus,
    ExceptionCase,
)
from .serializers import OrderSerializer


def _values(choices) -> str:
    return "one of " + ", ".join(value for value, _label in choices)


# --- approvals ------------------------------------------------------------------------------


class ApprovalTaskSerializer(serializers.ModelSerializer):
    order_no = serializers.CharField(source="order.order_no", read_only=True)
    order_status = serializers.CharField(source="order.status", read_only=True)
    payable = serializers.DecimalField(source="order.payable_amount", max_digits=14, decimal_places=2,
                                       read_only=True)
    currency = serializers.CharField(source="order.currency", read_only=True)
    policy = serializers.CharField(source="policy.name", read_only=True)
    status = serializers.CharField(read_only=True, help_text=_values(ApprovalStatus.choices))
    assignee_user = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    backup_user = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    superior_user = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    decided_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)

    class Meta:
        model = ApprovalTask
        fields = ["id", "order_no", "order_status", "payable", "currency", "policy", "level",
                  "assignee_group", "assignee_user", "backup_user", "superior_user", "status",
                  "created_at", "due_at", "escalated_at", "transferred_from", "decided_by",
                  "decided_at", "note"]
        read_only_fields = fields


class ApprovalDecisionSerializer(serializers.Serializer):
    note = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")


class ApprovalOverrideSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=2000)


class ApprovalFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=ApprovalStatus.choices)
    order_no = django_filters.CharFilter(field_name="order__order_no")

    class Meta:
        model = ApprovalTask
        fields = ["status", "order_no"]


class MayApprove(IsAuthenticated):
    """Users who read approvals (ops, customer service) or who may be asked to decide one: an
    approver, backup or superior of some level, or a member of an approver role. Service
    identities (scanners, integrations) and everyone else: 403."""

    def has_permission(self, request, view):
        if not super().has_permission(request, view):
            return False
        user = request.user
        if user.has_perm("orders.view_approvaltask"):
            return True
        groups = list(user.groups.values_list("name", flat=True))
        return ApprovalLevel.objects.filter(
            Q(approver_user=user) | Q(backup_user=user) | Q(superior_user=user) | Q(approver_group__in=groups)
        ).exists() or ApprovalTask.objects.filter(Q(assignee_user=user) | Q(backup_user=user)).exists()


class ApprovalTaskViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = ApprovalTaskSerializer
    filterset_class = ApprovalFilter
    lookup_value_regex = "[0-9]+"
    # Who may decide is the task's business (orders.approvals.may_decide), checked per task.
    permission_classes = [MayApprove]

    def get_queryset(self):
        tasks = ApprovalTask.objects.select_related(
            "order", "policy", "assignee_user", "backup_user", "superior_user", "decided_by"
        ).order_by("-created_at", "-id")
        user = self.request.user
        if getattr(self, "swagger_fake_view", False):  # schema generation, no real user
            return tasks.none()
        if user.has_perm("orders.view_approvaltask"):
            return tasks
        return tasks.filter(Q(assignee_user=user) | Q(backup_user=user)
                            | Q(assignee_group__in=user.groups.values_list("name", flat=True)))

    def _decide(self, request, pk, approve: bool) -> Response:
        body = ApprovalDecisionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        task = approvals.decide(int(pk), request.user, approve, body.validated_data["note"])
        task = ApprovalTask.objects.select_related(
            "order", "policy", "assignee_user", "backup_user", "superior_user", "decided_by"
        ).get(pk=task.pk)
        return Response(ApprovalTaskSerializer(task).data)

    @extend_schema(request=ApprovalDecisionSerializer, responses=ApprovalTaskSerializer)
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        """Approve: the next level's task opens, or the order is approved after the last level."""
        return self._decide(request, pk, True)

    @extend_schema(request=ApprovalDecisionSerializer, responses=ApprovalTaskSerializer)
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        """Reject with a note: the order goes on hold with it."""
        return self._decide(request, pk, False)


class OverrideApprovalView(APIView):
    """Emergency override: pending approval tasks close as overridden and the order is
    approved. Needs a reason; audited on the order's timeline."""

    permission_classes = [permission_required(approvals.OVERRIDE_PERMISSION)]

    @extend_schema(request=ApprovalOverrideSerializer, responses=OrderSerializer)
    def post(self, request, order_no):
        body = ApprovalOverrideSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        approvals.override(order_no, request.user, body.validated_data["reason"])
        return Response(OrderSerializer(selectors.order_detail(order_no)).data)


# --- exception cases ------------------------------------------------------------------------


class SopSerializer(serializers.Serializer):
    stage = serializers.CharField()
    severity = serializers.CharField()
    responsibility = serializers.CharField()
    owner_role = serializers.CharField()
    time_limit_hours = serializers.IntegerField()
    recommended_action = serializers.CharField()


class ExceptionCaseSerializer(serializers.ModelSerializer):
    order_no = serializers.CharField(source="order.order_no", default=None, read_only=True, allow_null=True)
    kind = serializers.CharField(read_only=True, help_text=_values(CaseKind.choices))
    stage = serializers.CharField(read_only=True, help_text=_values(CaseStage.choices))
    severity = serializers.CharField(read_only=True, help_text="one of low, medium, high, critical")
    responsibility = serializers.CharField(read_only=True, help_text="one of customer, platform, internal")
    status = serializers.CharField(read_only=True, help_text=_values(CaseStatus.choices))
    closed_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    sop = serializers.SerializerMethodField()

    class Meta:
        model = ExceptionCase
        fields = ["id", "order_no", "kind", "sub_reason", "stage", "severity", "responsibility",
                  "status", "owner_role", "detail", "opened_at", "due_at", "closed_at", "closed_by",
                  "root_cause", "sop"]
        read_only_fields = fields

    @extend_schema_field(SopSerializer)
    def get_sop(self, case) -> dict:
        sop = cases.sop_for(case.kind, case.sub_reason, self.context.get("sop_overrides"))
        return {name: sop[name] for name in cases.SOP_FIELDS}


class CloseCaseSerializer(serializers.Serializer):
    root_cause = serializers.CharField(max_length=4000)


CATEGORIES = [*CaseStage.choices, *CaseKind.choices]


class ExceptionCaseFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=CaseStatus.choices)
    category = django_filters.ChoiceFilter(choices=CATEGORIES, method="by_category",
                                           help_text="a stage or a kind")
    order_no = django_filters.CharFilter(field_name="order__order_no")

    class Meta:
        model = ExceptionCase
        fields = ["status", "category", "order_no", "severity", "owner_role"]

    def by_category(self, queryset, name, value):
        return queryset.filter(stage=value) if value in CaseStage.values else queryset.filter(kind=value)


class ExceptionCaseViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = ExceptionCase.objects.select_related("order", "closed_by").order_by("-opened_at", "-id")
    serializer_class = ExceptionCaseSerializer
    filterset_class = ExceptionCaseFilter
    permission_classes = [ModelPermissions]
    lookup_value_regex = "[0-9]+"

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "sop_overrides": cases.sop_overrides()}

    @extend_schema(request=None, responses={200: dict}, parameters=[
        OpenApiParameter("since", str, description="ISO date, default 30 days ago"),
        OpenApiParameter("until", str, description="ISO date (exclusive), default today")])
    @action(detail=False, methods=["get"], url_path="closure-rate")
    def closure_rate(self, request):
        """How many cases opened in the window were closed within 72 hours."""
        today = timezone.localdate()
        try:
            since = date.fromisoformat(request.query_params.get("since") or str(today - timedelta(days=30)))
            until = date.fromisoformat(request.query_params.get("until") or str(today))
        except ValueError:
            raise Invalid({"since": ["dates are YYYY-MM-DD"]}) from None
        tz = timezone.get_current_timezone()
        figures = cases.closure_rate_72h(datetime.combine(since, time.min, tz), datetime.combine(until, time.min, tz))
        return Response({"since": since, "until": until, **figures})

    @extend_schema(request=CloseCaseSerializer, responses=ExceptionCaseSerializer)
    @action(detail=True, methods=["post"],
            permission_classes=[permission_required(cases.CLOSE_PERMISSION)])
    def close(self, request, pk=None):
        """Close the case with its root cause (required)."""
        body = CloseCaseSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        case = cases.close_case(int(pk), request.user, body.validated_data["root_cause"])
        return Response(ExceptionCaseSerializer(case, context=self.get_serializer_context()).data)
