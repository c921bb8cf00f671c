"""``create_app``: the dashboard as an ASGI app over one or more queues."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from ..errors import InvalidOptionError
from ..queue import JobQueue
from .auth import AuthHook
from .routes import Api
from .security import Guard, new_csrf_token
from .templates import load_assets, render_page

#: How often the page reloads what it shows.
DEFAULT_REFRESH_MS = 2000


def create_app(
    queues: JobQueue | Sequence[JobQueue],
    *,
    auth: AuthHook | None = None,
    read_only: bool = False,
    allowed_origins: Iterable[str] = (),
    allowed_hosts: Iterable[str] | None = None,
    refresh_ms: int = DEFAULT_REFRESH_MS,
) -> Starlette:
    """The dashboard of ``queues`` (their names must differ).

    ``auth`` is a hook, request -> allowed (sync or async), e.g. :class:`BasicAuth` or
    :class:`TokenAuth`; ``None`` (no check) only where something in front of the app
    (your own middleware, a proxy) authenticates, or on localhost. ``read_only`` refuses
    every action on the server and shows no buttons. ``allowed_origins`` are origins
    besides the dashboard's own host (``"https://admin.example.com"``) from which its
    pages may send actions, for a proxy that rewrites the ``Host`` header.
    ``allowed_hosts`` (names, without port) refuses requests for any other host: set it
    when the dashboard has no authentication, against DNS rebinding (``jobqueue
    dashboard`` on localhost does).

    The app uses the queues on the event loop of the server that runs it and does not
    close them.
    """
    listed = [queues] if isinstance(queues, JobQueue) else list(queues)
    if not listed:
        raise InvalidOptionError("queues", "must name at least one JobQueue")
    by_name: dict[str, JobQueue] = {}
    for queue in listed:
        if not isinstance(queue, JobQueue):
            raise InvalidOptionError("queues", f"must be JobQueues, got {type(queue).__name__}")
        if queue.name in by_name:
            raise InvalidOptionError("queues", f"name {queue.name!r} twice")
        by_name[queue.name] = queue
    if auth is not None and not callable(auth):
        raise InvalidOptionError("auth", f"must be a callable (request -> bool), got {auth!r}")
    if isinstance(refresh_ms, bool) or not isinstance(refresh_ms, int) or refresh_ms < 200:
        raise InvalidOptionError("refresh_ms", f"must be an int >= 200, got {refresh_ms!r}")

    csrf_token = new_csrf_token()
    assets = load_assets()

    async def page(request: Request) -> Response:
        html = render_page(
            base=request.scope.get("root_path", "").rstrip("/"),
            csrf_token=csrf_token,
            read_only=read_only,
            refresh_ms=refresh_ms,
            assets=assets,
        )
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    async def static(request: Request) -> Response:
        asset = assets.get(request.path_params["name"])
        if asset is None:
            return PlainTextResponse("not found", status_code=404)
        return Response(
            asset.body,
            media_type=asset.media_type,
            headers={"Cache-Control": "private, max-age=86400"},
        )

    routes = [
        Route("/", page, methods=["GET"]),
        Route("/static/{name}", static, methods=["GET"]),
        *Api(by_name).routes(),
    ]
    guard = Middleware(
        Guard,
        auth=auth,
        csrf_token=csrf_token,
        read_only=read_only,
        allowed_origins=list(allowed_origins),
        allowed_hosts=None if allowed_hosts is None else list(allowed_hosts),
    )
    return Starlette(routes=routes, middleware=[guard])
