"""The OpenAPI schema's error responses (CONTRACTS.md "Errors"), declared once for every operation.

`ErrorResponsesAutoSchema` is the DEFAULT_SCHEMA_CLASS: on top of what a view declares it adds
* 400 (`ValidationError`) to every operation that takes input: a request body or any query
  parameter (filters, pagination);
* 401 and 403 (`Error`) to every operation that needs credentials (not `AllowAny`);
* 404 (`Error`) to every operation whose path names an object (`{...}`);
* 409 (`ConflictError`) to every state-changing operation that needs credentials;
* 415 (`Error`) to every operation that takes a request body;
* 429 (`Error`) to every operation of a throttled view.
A code a view declared without a body (`400: None`) gets the contract's body; a code it declared
with one is left as it is.
"""

from django.utils.translation import gettext as _
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.permissions import AllowAny

UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


@extend_schema_field({
    "type": "object",
    "description": "field → its reasons: a list of strings, or for nested input an object (or a "
                   "list, one entry per item) of the same shape",
    "additionalProperties": {"oneOf": [{"type": "array", "items": {}}, {"type": "object"}]},
})
class _FieldReasons(serializers.DictField):
    pass


class ValidationErrorSerializer(serializers.Serializer):
    """400: bad input; nothing was changed."""

    error = serializers.ChoiceField(choices=["validation"])
    fields = _FieldReasons()


class ErrorSerializer(serializers.Serializer):
    """401, 403, 404 and the other refusals: `error` names the kind (`unauthenticated`,
    `forbidden`, `not_found`, `too_large`, `throttled`, ...)."""

    error = serializers.CharField()
    detail = serializers.CharField()


@extend_schema_field({
    "type": "object",
    "description": "where the object stands, e.g. {\"status\", \"fulfilment\"} of an order",
    "additionalProperties": {"type": "string", "nullable": True},
})
class _State(serializers.DictField):
    pass


class ConflictErrorSerializer(serializers.Serializer):
    """409: the request is valid but the current state does not allow it; nothing was changed.
    State-machine refusals name the `state` and the transitions `allowed` from it; some
    refusals add what they are about (e.g. `approval_task`, `missing`)."""

    error = serializers.ChoiceField(choices=["conflict"])
    detail = serializers.CharField()
    state = _State(required=False)
    allowed = serializers.ListField(child=serializers.CharField(), required=False)


class ErrorResponsesAutoSchema(AutoSchema):
    def _needs_credentials(self) -> bool:
        try:
            permissions = self.view.get_permissions()
        except Exception:  # a view whose get_permissions needs a real request
            permissions = [cls() for cls in self.view.permission_classes]
        return not any(isinstance(permission, AllowAny) for permission in permissions)

    def _error_responses(self, operation: dict) -> dict:
        takes_input = "requestBody" in operation or any(
            parameter.get("in") == "query" for parameter in operation.get("parameters", []))
        needs_credentials = self._needs_credentials()
        errors = {}
        if takes_input:
            errors["400"] = (ValidationErrorSerializer, _("Bad input: each field with its reasons."))
        if needs_credentials:
            errors["401"] = (ErrorSerializer, _("No or invalid credentials."))
            errors["403"] = (ErrorSerializer, _("Authenticated, but not allowed."))
        if "{" in self.path:
            errors["404"] = (ErrorSerializer, _("No such object."))
        if "requestBody" in operation:
            errors["415"] = (ErrorSerializer, _("Unsupported media type: send one of those documented."))
        if self.view.throttle_classes:
            errors["429"] = (ErrorSerializer, _("Too many requests: try again later."))
        if needs_credentials and self.method in UNSAFE_METHODS:
            errors["409"] = (ConflictErrorSerializer,
                             _("Valid, but the current state does not allow it; nothing was changed."))
        return errors

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        responses = operation["responses"]
        for code, (serializer, description) in self._error_responses(operation).items():
            if code not in responses or "content" not in responses[code]:
                responses[code] = {**self._get_response_for_code(serializer, code),
                                   "description": description}
        for code, response in responses.items():  # declared by a view without its body
            if code.startswith("4") and "content" not in response:
                body = {"400": ValidationErrorSerializer, "409": ConflictErrorSerializer}.get(code, ErrorSerializer)
                responses[code] = {**self._get_response_for_code(body, code),
                                   "description": response.get("description", "")}
        operation["responses"] = dict(sorted(responses.items()))
        return operation
