"""The carrier's tracking push (Kuaidi100 format). Authenticated by its signature, not a token."""

import logging

from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from oms.throttling import rejection_allowed

from . import tracking
from .carriers import TrackingSignatureError
from .carriers.kuaidi100 import push_reply

logger = logging.getLogger(__name__)


class Kuaidi100PushView(APIView):
    """`POST /api/v1/carriers/kuaidi100/push/` — form `param` (the JSON push) and `sign`
    (upper-case MD5 of param + the salt we subscribed with). Each push carries the whole route;
    repeats change nothing. Answered `{"result": true, "returnCode": "200", "message": "成功"}`
    once applied; anything else makes Kuaidi100 push again."""

    authentication_classes = []
    permission_classes = [AllowAny]  # authenticated by the signature below
    parser_classes = [FormParser, MultiPartParser]

    @extend_schema(
        request=inline_serializer("Kuaidi100Push", {"param": serializers.CharField(),
                                                    "sign": serializers.CharField()}),
        responses={200: OpenApiResponse(description='{"result": true, "returnCode": "200", "message": "成功"}'),
                   400: None, 401: None},
    )
    def post(self, request):
        form = {name: str(request.data.get(name, "")) for name in ("param", "sign")}
        try:
            update = tracking.parse_push(form)
        except TrackingSignatureError as exc:
            # Not from the carrier: counted per address; past the rate, 429 and nothing logged.
            allowed, wait = rejection_allowed(request)
            if not allowed:
                self.throttled(request, wait)
            logger.warning("tracking push refused: %s", exc)
            return Response({"error": "unauthenticated", "detail": str(exc)},
                            status=status.HTTP_401_UNAUTHORIZED)
        except ValueError as exc:
            return Response({"error": "validation", "fields": {"param": [str(exc)]}},
                            status=status.HTTP_400_BAD_REQUEST)
        tracking.apply_update(update, "push")
        return Response(push_reply())
