# One image for every process of the store: api, projector, consumer (see compose.yaml).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY domain domain
COPY application application
COPY projections projections
COPY consumers consumers
COPY api api
COPY web web
COPY appstore appstore
RUN pip install --no-cache-dir .
ENV APPSTORE_HOST=0.0.0.0
EXPOSE 8000
CMD ["appstore", "serve"]
