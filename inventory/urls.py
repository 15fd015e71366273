from django.urls import path

from . import views

app_name = "inventory"
urlpatterns = [
    path("warnings/", views.stock_warnings, name="warnings"),
]
