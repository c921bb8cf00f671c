"""``python manage.py runworker [--concurrency N]``: a worker of the signups queue, until
SIGTERM or SIGINT (running jobs finish first, as ``jobqueue worker`` does)."""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any

from django.core.management.base import BaseCommand

from jobqueue.cli import run_worker

from ...jobs import worker_queue


class Command(BaseCommand):
    help = "Run a jobqueue worker for the signups queue until SIGTERM/SIGINT."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--concurrency", type=int, default=None)

    def handle(self, *args: Any, **options: Any) -> None:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
        asyncio.run(run_worker(worker_queue(), options["concurrency"]))
        self.stdout.write("worker stopped")
