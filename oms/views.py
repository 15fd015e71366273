from django.http import HttpResponse, JsonResponse
from django.views import defaults
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from rest_framework.exceptions import NotFound

from .health import run_checks


@never_cache
@require_GET
def livez(request):
    """Liveness: the process answers (no database, broker or cache touched). An orchestrator
    restarts on this failing and stops routing on /healthz failing; the benchmarks use it as
    the ceiling of a request through the app server."""
    return HttpResponse(b"ok", content_type="text/plain")


@never_cache
@require_GET
def healthz(request):
    """200 when database, broker and cache all answer; 503 naming what is down."""
    healthy, checks = run_checks()
    down = [name for name, result in checks.items() if result["status"] == "down"]
    body = {"status": "ok" if healthy else "down", "down": down, "checks": checks}
    return JsonResponse(body, status=200 if healthy else 503)


def not_found(request, exception=None):
    """handler404: an address under /api/ that no route matches (an id outside its route's
    pattern included) answers the contract's JSON 404, like an unknown object; pages keep
    Django's."""
    if request.path.startswith("/api/"):
        return JsonResponse({"error": "not_found", "detail": str(NotFound.default_detail)}, status=404)
    return defaults.page_not_found(request, exception)
