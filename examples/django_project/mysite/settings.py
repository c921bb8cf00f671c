"""Settings of the example project: the smallest Django that serves the signups app."""

from __future__ import annotations

import os

SECRET_KEY = "example-only-not-secret"
DEBUG = True
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = ["signups"]
ROOT_URLCONF = "mysite.urls"
DATABASES: dict[str, dict[str, str]] = {}  # the example stores nothing of its own
USE_TZ = True

#: Where the queue lives.
JOBQUEUE_REDIS_URL = os.environ.get("JOBQUEUE_REDIS_URL", "redis://localhost:6379/0")
