# The service, its async worker and its migrations: one image, many commands (see
# docker-compose.yml); its load generator is the same image built with INSTALL=install-load.
# The install is the Makefile's, the server command the Makefile's `serve` (tests/test_deploy.py
# keeps both identical to what CI runs).
FROM python:3.11-slim

RUN apt-get update \
    && apt-get install -y --no-install-recommends make \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --create-home --home-dir /srv/coupon-lab coupon

WORKDIR /srv/coupon-lab
USER coupon
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    COUPON_BIND=0.0.0.0:8000

# Dependencies first, so that a code change does not reinstall them: the service's alone
# (requirements/service.txt); the compose stack's locust builds with INSTALL=install-load.
ARG INSTALL=install-service
COPY --chown=coupon Makefile requirements.txt ./
COPY --chown=coupon requirements/ requirements/
RUN make $INSTALL PYTHON=python3
COPY --chown=coupon . .

EXPOSE 8000
CMD [".venv/bin/gunicorn", "-c", "gunicorn.conf.py", "app:app"]
