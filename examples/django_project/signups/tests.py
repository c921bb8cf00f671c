"""Run by Django's test runner (``manage.py test signups``) against the Redis of
``$JOBQUEUE_REDIS_URL``: views add through the blocking facade, and the ``runworker``
management command runs the jobs and stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from django.test import SimpleTestCase

from jobqueue import JobStatus

from .jobs import producer

PROJECT = Path(__file__).resolve().parents[1]


class SignupViewTests(SimpleTestCase):
    def setUp(self) -> None:
        producer().clear()

    def test_signup_adds_a_waiting_job(self) -> None:
        reply = self.client.post("/signup", {"email": "ada@example.com"})
        self.assertEqual(reply.status_code, 202)
        job_id = reply.json()["job_id"]
        info = producer().get_job_status(job_id)
        assert info is not None
        self.assertEqual(info.status, JobStatus.WAITING)
        self.assertEqual(info.data, {"email": "ada@example.com"})
        again = self.client.post("/signup", {"email": "ada@example.com"}).json()["job_id"]
        self.assertEqual(again, job_id)  # the idempotency key

    def test_bad_requests_are_refused(self) -> None:
        self.assertEqual(self.client.post("/signup", {"email": "nope"}).status_code, 400)
        self.assertEqual(self.client.get("/signup").status_code, 405)
        self.assertEqual(self.client.get("/jobs/no-such-job").status_code, 404)


class RunWorkerCommandTests(SimpleTestCase):
    def test_the_worker_runs_the_jobs_and_stops_on_sigterm(self) -> None:
        producer().clear()
        email = f"{uuid.uuid4().hex[:8]}@example.com"
        job_id = self.client.post("/signup", {"email": email}).json()["job_id"]
        worker = subprocess.Popen(
            [sys.executable, "manage.py", "runworker", "--concurrency", "2"],
            cwd=PROJECT,
            env=os.environ.copy(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            deadline = time.monotonic() + 20
            while (state := self.client.get(f"/jobs/{job_id}").json())["status"] != "completed":
                self.assertLess(time.monotonic(), deadline, state)
                self.assertIsNone(worker.poll(), "the worker exited early")
                time.sleep(0.05)
            self.assertEqual(state["result"], {"sent_to": email})
        finally:
            worker.send_signal(signal.SIGTERM)
            output, _ = worker.communicate(timeout=30)
        self.assertEqual(worker.returncode, 0, output)
        self.assertIn("worker stopped", output)
