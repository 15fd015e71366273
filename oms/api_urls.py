"""The /api/v1/ tree: one router, each app registering its viewsets in its api module."""

from django.urls import path
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.permissions import AllowAny
from rest_framework.routers import DefaultRouter


class ObtainToken(ObtainAuthToken):
    """POST {"username", "password"} → {"token"}; the one API call that needs no credentials."""

    permission_classes = [AllowAny]


router = DefaultRouter()
urlpatterns = [
    path("auth/token/", ObtainToken.as_view(), name="auth-token"),
]
