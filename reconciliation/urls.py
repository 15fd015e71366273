from django.urls import path

from . import views

app_name = "finance"
urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("runs/", views.start_run, name="start-run"),
    path("statements/", views.statements, name="statements"),
    path("statements/upload/", views.upload_statement, name="upload"),
    path("statements/imports/<int:pk>/", views.import_progress, name="import-progress"),
    path("discrepancies/", views.discrepancy_list, name="discrepancies"),
    path("discrepancies/<int:pk>/", views.discrepancy_detail, name="discrepancy"),
    path("vouchers/", views.voucher_list, name="vouchers"),
    path("vouchers/<path:transaction_no>/reverse/", views.reverse_voucher, name="reverse"),
    path("matches/", views.match_list, name="matches"),
    path("matches/<int:pk>/<str:decision>/", views.decide_match, name="decide-match"),
    path("reports/monthly/", views.monthly_report, name="monthly"),
]
