# authsvc in a container: the wheel (built here from this checkout) on Python 3.11, run by `authsvc serve`, which
# applies the migrations and then becomes gunicorn (or granian: AUTHSVC_SERVER=granian). Needs AUTHSVC_DATABASE_URL
# and AUTHSVC_REDIS_URL; see compose.yaml and docs/OPERATIONS.md ("Containers"): built with Podman and run once on a
# stand-in Debian Python 3.11 base (no registry reachable there); read docs/OPERATIONS.md before relying on it.

FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN pip install --no-cache-dir "build==1.6.1" && python -m build --outdir /dist .

FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    AUTHSVC_INSTANCE_PATH=/var/lib/authsvc
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/authsvc --create-home authsvc
COPY --from=build /dist/ /tmp/dist/
# DL3013: this installs the wheel just built; its dependencies are the ranges in pyproject.toml, as for pip users
# hadolint ignore=DL3013
RUN set -eu; wheel="$(echo /tmp/dist/authsvc-*.whl)"; \
    pip install --no-cache-dir "${wheel}[postgres,granian]"; \
    rm -rf /tmp/dist
USER authsvc
WORKDIR /var/lib/authsvc
# the instance folder: generated keys (secret_key, mfa_keys, oauth_kek), the breach corpus, the outbox
VOLUME ["/var/lib/authsvc"]
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
CMD ["authsvc", "serve", "--host", "0.0.0.0", "--port", "8000"]
