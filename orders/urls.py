from django.urls import path

from . import views

app_name = "cs"
urlpatterns = [
    path("orders/", views.order_search, name="order-search"),
    path("orders/<str:order_no>/", views.order_detail, name="order-detail"),
]
