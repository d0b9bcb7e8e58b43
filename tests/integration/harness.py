"""Separate Celery worker processes for integration tests (real Redis broker, PostgreSQL store)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).parents[2]


class WorkerProcess:
    """``celery worker`` in its own process, configured only through the environment."""

    def __init__(
        self, env: Mapping[str, str], name: str, concurrency: int = 4, log_dir: Path | None = None
    ) -> None:
        self.env = {**os.environ, **env, "CLOSEDLOOP_LOG_FORMAT": "json", "CLOSEDLOOP_LOG_LEVEL": "WARNING"}
        self.name = name
        self.concurrency = concurrency
        self.log_path = (log_dir or Path("/tmp")) / f"worker-{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        cmd = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "workers.celery_app:app",
            "worker",
            "--pool=threads",
            f"--concurrency={self.concurrency}",
            f"--hostname={self.name}@%h",
            "--without-gossip",
            "--without-mingle",
            "--loglevel=WARNING",
        ]
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        time.sleep(0.5)
        if self.proc.poll() is not None:
            raise RuntimeError(f"worker {self.name} exited at once: {self.log_path.read_text()[-2000:]}")
        return self

    def kill(self) -> None:
        """SIGKILL: the worker dies mid-batch without acknowledging."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM: Celery's warm shutdown finishes the running tasks."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()
