"""Private Redis and PostgreSQL servers for tests that crash and restart them.

The shared services on 127.0.0.1 serve every other test, so a test that kills its broker or its
database starts its own copy on a free port, in its own directory, and stops it afterwards.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import psycopg
import redis

from sandboxes.common import free_port


class PrivateRedis:
    """A redis-server of this test alone, with an fsync'ed append-only file so queued tasks survive a crash."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> PrivateRedis:
        self.workdir.mkdir(parents=True, exist_ok=True)
        cmd = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        cmd += ["--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.workdir)]
        log = (self.workdir / "redis.log").open("ab")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(self.url, socket_connect_timeout=0.5).ping()
                return self
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("private redis-server did not start") from None
                time.sleep(0.05)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def crash_and_restart(self) -> None:
        self.kill()
        time.sleep(0.5)  # clients see refused connections for a moment
        self.start()
        self.restarts += 1


def _postgres_bindir() -> Path:
    """The directory holding initdb and pg_ctl (Debian keeps them off PATH)."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not candidates:
        raise RuntimeError("initdb not found: PostgreSQL server binaries are required for this test")
    return Path(candidates[-1]).parent


class PrivatePostgres:
    """A PostgreSQL cluster of this test alone, so it can be really crashed and restarted.

    ``crash_and_restart`` stops the server with ``pg_ctl -m immediate`` (no checkpoint, backends
    killed: what a power cut or an OOM kill looks like to clients) and starts it again, which
    replays the WAL. initdb refuses to run as root, so as root the server runs as ``postgres``, and
    ``workdir`` must then be reachable by that user (pytest's own tmp_path is not: use /tmp).
    """

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.data = workdir / "data"
        self.port = free_port()
        self.bindir = _postgres_bindir()
        self.restarts = 0

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            log = self.workdir / "postgres.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(args[:2])} failed: {done.stderr or done.stdout}\n{tail}")

    def init(self) -> PrivatePostgres:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.workdir, "postgres")
            self.workdir.chmod(0o755)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
        return self.start()

    def start(self) -> PrivatePostgres:
        options = f"-p {self.port} -k {self.workdir} -c listen_addresses=127.0.0.1"
        log = str(self.workdir / "postgres.log")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "-t", "60", "start")
        with psycopg.connect(self.url, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
        return self

    def stop(self, mode: str = "fast") -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def crash_and_restart(self) -> None:
        self.stop(mode="immediate")
        time.sleep(0.5)  # clients see refused connections for a moment
        self.start()
        self.restarts += 1
