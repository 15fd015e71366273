"""The sandbox marketplace's URL tree, mounted under /sandbox/ by oms/urls.py:

    path("sandbox/", include("channels.sandbox.urls")),

/sandbox/taobao/router/rest                          TOP-style router (taobao.py)
/sandbox/shopify/admin/api/<version>/graphql.json    Shopify Admin GraphQL-style (shopify.py)

The tree is empty when OMS_SANDBOX_ENABLED is false (default: false only when
OMS_ENV=production), and the views answer 404 if the setting is switched off later.
"""

from django.urls import path

from . import shopify, taobao
from .config import enabled

app_name = "sandbox"

urlpatterns = [
    path("taobao/router/rest", taobao.router, name="taobao-router"),
    path("shopify/admin/api/<str:version>/graphql.json", shopify.graphql_view, name="shopify-graphql"),
] if enabled() else []
