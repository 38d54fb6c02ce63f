# Redis from Debian's packages, for a machine where redis:7 cannot be pulled
# (scripts/compose_smoke.py). Like the official image: runs as redis in /data (where
# --appendonly writes), redis-cli for the health check, `redis-server ...` as the command.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /data && chown redis:redis /data
WORKDIR /data
USER redis
CMD ["redis-server"]
