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
RUN pip install --no-cache-dir .
USER nobody
ENTRYPOINT ["qorgau"]
