from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from .jobs import producer


@csrf_exempt
@require_POST
def signup(request: HttpRequest) -> JsonResponse:
    email = request.POST.get("email", "")
    if "@" not in email:
        return JsonResponse({"error": "email required"}, status=400)
    job_id = producer().add_job(
        "send-welcome", {"email": email}, idempotency_key=f"welcome:{email}"
    )
    return JsonResponse({"job_id": job_id}, status=202)


@require_GET
def job_status(request: HttpRequest, job_id: str) -> JsonResponse:
    info = producer().get_job_status(job_id)
    if info is None:
        return JsonResponse({"error": "no such job"}, status=404)
    return JsonResponse({"status": info.status.value, "result": info.return_value})
