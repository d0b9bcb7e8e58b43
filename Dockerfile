# syntax=docker/dockerfile:1
# One image serves web, worker and beat: pick the role with the command.
FROM python:3.11-slim AS build
WORKDIR /src
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY pyproject.toml README.md ./
COPY sync ./sync
COPY workers ./workers
RUN python -m venv /opt/closedloop \
    && /opt/closedloop/bin/pip install --no-cache-dir .

FROM python:3.11-slim
ENV PATH=/opt/closedloop/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    CLOSEDLOOP_MAPPINGS=/app/mappings \
    CLOSEDLOOP_LOG_FORMAT=json
RUN groupadd --system --gid 10001 closedloop \
    && useradd --system --uid 10001 --gid closedloop --home-dir /app closedloop
WORKDIR /app
COPY --from=build /opt/closedloop /opt/closedloop
COPY mappings ./mappings
COPY config ./config
RUN mkdir -p /app/var && chown -R closedloop:closedloop /app/var
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["closedloop"]
CMD ["web", "--host", "0.0.0.0", "--port", "8000"]
