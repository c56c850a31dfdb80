FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY core core
COPY edge edge
COPY stream stream
COPY online_ml online_ml
COPY storage storage
COPY alerts alerts
COPY api api
COPY dashboards dashboards
COPY qorgau qorgau
# urllib3-future (niquests, for grafana-client) built from source so that it does not replace
# urllib3 under requests, pywebpush and apprise (its wheel does, at every start).
RUN URLLIB3_NO_OVERRIDE=1 pip install --no-cache-dir --no-binary=urllib3-future .
# One unprivileged user for every Qorgau service, with the uid Mosquitto's image runs its
# broker as: the mqtt-auth service shares the broker's process namespace and signals it
# after rewriting its password and ACL files, which the broker must be able to read.
RUN groupadd --gid 1883 qorgau && useradd --uid 1883 --gid 1883 --no-create-home qorgau \
    && mkdir -p /var/lib/qorgau /mosquitto/auth /certs \
    && chown qorgau:qorgau /var/lib/qorgau /mosquitto/auth /certs
USER qorgau
ENTRYPOINT ["qorgau"]
