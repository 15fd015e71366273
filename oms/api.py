"""API primitives shared by every app: the error format of CONTRACTS.md and permission checks."""

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.permissions import BasePermission, DjangoModelPermissions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from . import errors

_ERROR_NAMES = {
    status.HTTP_401_UNAUTHORIZED: "unauthenticated",
    status.HTTP_403_FORBIDDEN: "forbidden",
    status.HTTP_404_NOT_FOUND: "not_found",
    status.HTTP_405_METHOD_NOT_ALLOWED: "method_not_allowed",
    status.HTTP_406_NOT_ACCEPTABLE: "not_acceptable",
    status.HTTP_413_REQUEST_ENTITY_TOO_LARGE: "too_large",
    status.HTTP_415_UNSUPPORTED_MEDIA_TYPE: "unsupported_media_type",
    status.HTTP_429_TOO_MANY_REQUESTS: "throttled",
}


def validation_fields(detail) -> dict:
    """Field → list of reasons, whatever shape DRF produced (dict, list or a single string)."""
    if isinstance(detail, dict):
        return {
            field: reasons if isinstance(reasons, list | dict) else [reasons]
            for field, reasons in detail.items()
        }
    if isinstance(detail, list):
        return {"non_field_errors": detail}
    return {"non_field_errors": [detail]}


def domain_error_response(exc: errors.DomainError) -> Response:
    if isinstance(exc, errors.Invalid):
        body = {"error": "validation", "fields": exc.fields}
    elif isinstance(exc, errors.Conflict):
        body = {"error": "conflict", "detail": exc.detail, **exc.extra}
    else:
        body = {"error": _ERROR_NAMES.get(exc.status_code, "error"), "detail": exc.detail, **exc.extra}
    return Response(body, status=exc.status_code)


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "the body is larger than this endpoint takes"
    default_code = "too_large"


MAX_PUSH_BODY = 1024 * 1024  # CONTRACTS.md: a push body over 1 MB is refused with 413


class Pagination(LimitOffsetPagination):
    """`?limit=` is capped; an `?offset=` beyond what any table holds is a 400, not a database
    error."""

    max_limit = 500
    max_offset = 10**12

    def get_offset(self, request):
        offset = super().get_offset(request)
        if offset > self.max_offset:
            raise exceptions.ValidationError({self.offset_query_param: [f"at most {self.max_offset}"]})
        return offset


def exception_handler(exc, context):
    if isinstance(exc, errors.DomainError):
        return domain_error_response(exc)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        response.data = {"error": "validation", "fields": validation_fields(exc.detail)}
    elif isinstance(exc, exceptions.ParseError):
        response.data = {"error": "validation", "fields": {"body": [str(exc.detail)]}}
    else:
        detail = response.data.get("detail", "") if isinstance(response.data, dict) else ""
        response.data = {
            "error": _ERROR_NAMES.get(response.status_code, "error"),
            "detail": str(detail),
        }
    return response


def permission_required(*perms: str) -> type[BasePermission]:
    """A DRF permission class admitting users who hold every one of `perms` (via their role)."""

    class HasPermissions(BasePermission):
        required = perms

        def has_permission(self, request, view):
            user = request.user
            return bool(user and user.is_authenticated and user.has_perms(perms))

    HasPermissions.__name__ = "Has_" + "_".join(p.replace(".", "_") for p in perms)
    return HasPermissions


class ModelPermissions(DjangoModelPermissions):
    """Django model permissions, with reads requiring the `view` permission too, and OPTIONS
    (the endpoint's description) as well: DRF's map lets any signed-in user, a scanner's token
    included, read it (as orders.api's OPTIONS, tests/test_permission_matrix.py)."""

    perms_map = {
        **DjangoModelPermissions.perms_map,
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
        "OPTIONS": ["%(app_label)s.view_%(model_name)s"],
    }
