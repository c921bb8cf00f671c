"""A web dashboard for jobqueue: queues, jobs and schedules in the browser, with the admin
actions of the CLI (retry, remove, promote, pause, resume, drain, DLQ replay, run a
schedule now, unschedule), live by server-sent events.

It is an ASGI app (Starlette) over the public `JobQueue` API: pages
rendered on the server (Jinja2, ``templates/``), a JSON API, and the events stream. Run it
with ``jobqueue dashboard`` (every queue of the Redis) or mount it in an ASGI app of your
own::

    from jobqueue.dashboard import BasicAuth, create_app

    dashboard = create_app([queue], auth=BasicAuth("admin", os.environ["DASHBOARD_PASSWORD"]))
    app.mount("/jobs", dashboard)

and run its lifespan in your app's (``async with
dashboard.router.lifespan_context(dashboard): ...``): Starlette never runs a mounted app's
lifespan, and the dashboard's live-event readers and own queues close at its end.

Modules: ``app`` (create_app), ``pages`` + ``templates`` (HTML), ``routes`` (JSON API and
actions), ``live`` (the event hub and server-sent events), ``throughput`` + ``chart`` (the
last hour), ``queues`` (given or discovered), ``state``, ``auth``, ``security``,
``server`` (uvicorn).

Install it with the ``dashboard`` extra (``pip install jobqueue[dashboard]``);
``import jobqueue`` never imports it.
"""

from __future__ import annotations

from .app import create_app
from .auth import AuthHook, BasicAuth, TokenAuth
from .server import serve

__all__ = ["AuthHook", "BasicAuth", "TokenAuth", "create_app", "serve"]
