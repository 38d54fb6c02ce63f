# PostgreSQL from Debian's packages, for a machine where postgres:16 cannot be pulled
# (scripts/compose_smoke.py). Like the official image: POSTGRES_USER, POSTGRES_PASSWORD and
# POSTGRES_DB set up the first start, data in /var/lib/postgresql/data, pg_isready for the health
# check, `postgres -c ...` as the command. Debian bookworm's PostgreSQL is 15.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN mkdir -p /etc/postgresql-common/createcluster.d \
 && echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/bnlab.conf \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-15 \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/postgresql/data /var/run/postgresql \
 && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/
USER postgres
ENTRYPOINT ["postgres-entrypoint.sh"]
CMD ["postgres"]
