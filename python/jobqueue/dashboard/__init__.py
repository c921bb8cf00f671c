"""A web dashboard for jobqueue: queues, jobs and schedules in the browser, with the admin
actions of the CLI (retry, remove, pause, resume, drain, DLQ replay, unschedule).

It is an ASGI app (Starlette) over the public :class:`~jobqueue.JobQueue` API. Run it with
``jobqueue dashboard my-queue`` or mount it in an ASGI app of your own::

    from jobqueue.dashboard import BasicAuth, create_app

    dashboard = create_app([queue], auth=BasicAuth("admin", os.environ["DASHBOARD_PASSWORD"]))
    app.mount("/jobs", dashboard)

Install it with the ``dashboard`` extra (``pip install jobqueue[dashboard]``);
``import jobqueue`` never imports it.
"""

from __future__ import annotations

from .app import create_app
from .auth import AuthHook, BasicAuth, TokenAuth
from .server import serve

__all__ = ["AuthHook", "BasicAuth", "TokenAuth", "create_app", "serve"]
