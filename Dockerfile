# syntax=docker/dockerfile:1
# The phone-agent service: `docker build -t phone-agent .` (docs/deploy.md). The image runs
# `gunicorn app:app` like the Procfile, on $PORT (8000), as an unprivileged user. Schema
# migrations run at start-up under a lock (MIGRATE_ON_START), so every deploy migrates.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOST=0.0.0.0 \
    PORT=8000

WORKDIR /app

# Dependencies first: this layer is rebuilt only when requirements.txt changes.
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

# The code belongs to root and is read-only for the service; only instance/ (the default SQLite
# file, when DATABASE_URL is not set) is writable.
COPY . .
RUN python -m compileall -q . \
    && useradd --system --uid 10001 --user-group --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin phoneagent \
    && mkdir -p instance \
    && chown phoneagent:phoneagent instance

USER 10001:10001
EXPOSE 8000

# /healthz answers as soon as a worker serves. The slim image has no curl: Python does the GET,
# and exits 1 (unhealthy) when it fails.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8000') + '/healthz', timeout=4)"]

CMD ["gunicorn", "app:app"]
