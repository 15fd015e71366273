"""Request guards that run before any view."""

from django.http import HttpResponseBadRequest, JsonResponse


def refuse_nul_bytes(get_response):
    """A NUL byte in the path or the query string is refused with 400 (PostgreSQL refuses it
    in a text parameter: every filter, search and admin list would answer 500)."""

    def middleware(request):
        query = request.META.get("QUERY_STRING", "")
        if "\x00" in request.path or "%00" in query.lower() or "\x00" in query:
            if request.path.startswith("/api/"):
                return JsonResponse({"error": "validation", "fields": {"query": ["a NUL byte is not allowed"]}},
                                    status=400)
            return HttpResponseBadRequest("A NUL byte is not allowed in the address.")
        return get_response(request)

    return middleware
