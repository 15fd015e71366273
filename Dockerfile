FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    OMS_ENV=production \
    OMS_VAR_DIR=/app/var

WORKDIR /app
RUN useradd --create-home --uid 1000 oms

COPY pyproject.toml ./
COPY . .
RUN pip install --no-cache-dir -e . \
    && SECRET_KEY=collectstatic-only ALLOWED_HOSTS=localhost python manage.py collectstatic --no-input \
    && mkdir -p /app/var && chown -R oms /app/var

USER oms
EXPOSE 8000
CMD ["gunicorn", "oms.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--timeout", "60", "--access-logfile", "-"]
