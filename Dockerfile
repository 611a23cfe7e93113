# The Anwang app for a real deployment (docker compose up): Python + npm-installed map assets,
# served by gunicorn. The database is the separate `db` service (postgis/postgis).
FROM node:20-bookworm-slim AS assets
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --loglevel=error

FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 ANWANG_VAR=/var/lib/anwang
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends postgresql-client \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /var/lib/anwang --create-home anwang
COPY requirements.txt pyproject.toml README.md ./
RUN pip install --no-cache-dir -r requirements.txt
COPY geo ./geo
COPY layers ./layers
COPY web ./web
COPY data ./data
COPY --from=assets /app/node_modules ./node_modules
RUN pip install --no-cache-dir --no-deps . \
    && pybabel compile -f -d web/translations
USER anwang
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/api/health')"
CMD ["sh", "-c", "anwang db upgrade && exec gunicorn --bind 0.0.0.0:8000 --worker-class gthread --workers 2 --threads 16 --timeout 120 'web:create_app()'"]
