from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from .health import run_checks


@never_cache
@require_GET
def healthz(request):
    """200 when database, broker and cache all answer; 503 naming what is down."""
    healthy, checks = run_checks()
    down = [name for name, result in checks.items() if result["status"] == "down"]
    body = {"status": "ok" if healthy else "down", "down": down, "checks": checks}
    return JsonResponse(body, status=200 if healthy else 503)
