"""Liveness, readiness and Prometheus metrics endpoints."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from fastapi import APIRouter, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from sync.logs import get_logger
from sync.metrics import refresh_store_gauges
from sync.store.db import Store, is_current

log = get_logger(__name__)

ReadyCheck = Callable[[], bool]


def run_checks(checks: Mapping[str, ReadyCheck]) -> dict[str, bool]:
    """Run every check; one that raises counts as failed (and is logged without its arguments)."""
    results: dict[str, bool] = {}
    for name, check in checks.items():
        try:
            results[name] = bool(check())
        except Exception as exc:  # a readiness probe must answer, whatever the dependency does
            log.warning("ready_check_failed", check=name, error_type=type(exc).__name__)
            results[name] = False
    return results


def health_router(store: Store, ready_checks: Mapping[str, ReadyCheck] | None = None) -> APIRouter:
    """``/healthz`` (process alive), ``/readyz`` (store migrated + injected checks), ``/metrics``."""
    router = APIRouter()
    checks: dict[str, ReadyCheck] = {"store": lambda: is_current(store.engine), **(ready_checks or {})}

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz() -> JSONResponse:
        results = await run_in_threadpool(run_checks, checks)
        failed = sorted(name for name, ok in results.items() if not ok)
        status = 503 if failed else 200
        body = {"status": "unavailable" if failed else "ok", "checks": results, "failed": failed}
        return JSONResponse(body, status_code=status)

    @router.get("/metrics")
    async def metrics() -> Response:
        try:
            await run_in_threadpool(refresh_store_gauges, store)
        except Exception as exc:  # stale gauges beat a failed scrape
            log.warning("store_gauges_refresh_failed", error_type=type(exc).__name__)
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return router
