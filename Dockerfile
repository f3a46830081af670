# powersim: REST, websocket and GraphQL over a pandapower power flow, history in SQLite.
#   docker build -t powersim .
#   docker run -p 5000:5000 powersim                       # starts its own Redis inside
#   docker run -p 5000:5000 -e REDIS_URL=redis://:PASSWORD@host:6379/0 powersim
# Reached under a name other than localhost or an IP address (a proxy, another container):
#   -e POWERSIM_ALLOWED_HOSTS=grid.example.com  (and POWERSIM_ALLOWED_ORIGINS for pages elsewhere)

# Build stage: the virtualenv with the pinned requirements (all binary wheels; no compiler).
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY requirements.txt /tmp/requirements.txt
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install -r /tmp/requirements.txt dumb-init==1.2.5.post1

# Runtime stage: the venv and the app, nothing else; no build tools, no test tools.
FROM python:3.11-slim
LABEL org.opencontainers.image.title="powersim" \
      org.opencontainers.image.description="A pandapower power flow on demand, served over REST, a websocket and GraphQL, with history in SQLite and live updates through Redis." \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="MIT"

RUN groupadd --system --gid 10001 powersim \
 && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home powersim \
 && mkdir -p /data && chown 10001:10001 /data && chmod 700 /data

COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY test_sim.py ./
COPY powersim/ powersim/
COPY scripts/bootstrap.sh scripts/serve.sh scripts/

# HOST 0.0.0.0: reachable through the published port. It is an IP address, so it adds no
# allowed Host name: localhost names and IP literals are always served (the HEALTHCHECK asks
# 127.0.0.1), other names need POWERSIM_ALLOWED_HOSTS. DATA_DIR and DATABASE_URL: the volume.
ENV PATH="/opt/venv/bin:$PATH" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOST=0.0.0.0 \
    PORT=5000 \
    DATA_DIR=/data \
    DATABASE_URL=sqlite:////data/powersim.db

USER 10001:10001
VOLUME ["/data"]
EXPOSE 5000

# Start-up (pandapower import in every worker) takes a few seconds; the port opens when warm.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-m", "powersim.healthcheck"]

# dumb-init is PID 1: it reaps zombies and hands SIGTERM to serve.sh alone (--single-child),
# which forwards it to the server, waits for the drain, then stops the Redis it started.
ENTRYPOINT ["dumb-init", "--single-child", "--"]
CMD ["scripts/serve.sh"]
