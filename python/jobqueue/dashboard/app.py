"""``create_app``: the dashboard as an ASGI app, over the queues given or every queue of
the Redis (found through the index of queue names)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from ..errors import InvalidOptionError
from ..queue import JobQueue
from ..redis_config import RedisConfig
from .auth import AuthHook
from .pages import Pages
from .queues import QueueSet
from .routes import Api
from .security import Guard, new_csrf_token
from .state import Dashboard
from .templates import load_assets

#: How often an open page reloads what it shows when server-sent events are not
#: available (with them it reloads on each event, and every ``SLOW_POLL`` times this).
DEFAULT_REFRESH_MS = 2000


def create_app(
    queues: JobQueue | Sequence[JobQueue] | None = None,
    *,
    redis: RedisConfig | str | Mapping[str, Any] | None = None,
    prefix: str = "jq",
    auth: AuthHook | None = None,
    read_only: bool = False,
    allowed_origins: Iterable[str] = (),
    allowed_hosts: Iterable[str] | None = None,
    refresh_ms: int = DEFAULT_REFRESH_MS,
) -> Starlette:
    """The dashboard of ``queues`` (their names must differ), or with ``queues=None`` of
    every queue of prefix ``prefix`` at ``redis`` (a ``RedisConfig``, URL or mapping;
    default: the environment, as ``JobQueue``), listed from the index of queue names.

    ``auth`` is a hook, request -> allowed (sync or async), e.g. `BasicAuth` or
    `TokenAuth`; ``None`` (no check) only where something in front of the app
    (your own middleware, a proxy) authenticates, or on localhost. ``read_only`` refuses
    every action on the server and shows no buttons. ``allowed_origins`` are origins
    besides the dashboard's own host (``"https://admin.example.com"``) from which its
    pages may send actions, for a proxy that rewrites the ``Host`` header.
    ``allowed_hosts`` (names, without port) refuses requests for any other host: set it
    when the dashboard has no authentication, against DNS rebinding (``jobqueue
    dashboard`` on localhost does).

    The app uses the queues on the event loop of the server that runs it and does not
    close the queues it was given; those it opened itself it closes at shutdown.
    """
    listed = None if queues is None else [queues] if isinstance(queues, JobQueue) else queues
    if listed is not None and redis is not None:
        raise InvalidOptionError("redis", "is for queues=None: given queues have their own")
    queue_set = QueueSet(None if listed is None else list(listed), redis=redis, prefix=prefix)
    if auth is not None and not callable(auth):
        raise InvalidOptionError("auth", f"must be a callable (request -> bool), got {auth!r}")
    if isinstance(refresh_ms, bool) or not isinstance(refresh_ms, int) or refresh_ms < 200:
        raise InvalidOptionError("refresh_ms", f"must be an int >= 200, got {refresh_ms!r}")

    csrf_token = new_csrf_token()
    dashboard = Dashboard(
        queues=queue_set,
        csrf_token=csrf_token,
        read_only=read_only,
        refresh_ms=refresh_ms,
        assets=load_assets(),
    )

    async def static(request: Request) -> Response:
        asset = dashboard.assets.get(request.path_params["name"])
        if asset is None:
            return PlainTextResponse("not found", status_code=404)
        return Response(
            asset.body,
            media_type=asset.media_type,
            headers={"Cache-Control": "private, max-age=86400"},
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await dashboard.close()

    routes = [
        *Pages(dashboard).routes(),
        Route("/static/{name}", static, methods=["GET"]),
        *Api(dashboard).routes(),
    ]
    guard = Middleware(
        Guard,
        auth=auth,
        csrf_token=csrf_token,
        read_only=read_only,
        allowed_origins=list(allowed_origins),
        allowed_hosts=None if allowed_hosts is None else list(allowed_hosts),
    )
    app = Starlette(routes=routes, middleware=[guard], lifespan=lifespan)
    app.state.dashboard = dashboard
    return app
