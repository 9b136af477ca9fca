# Sprout: `sprout serve` on $PORT (Heroku sets it; 5000 otherwise).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SPROUT_DATA_DIR=/data \
    PORT=5000

WORKDIR /app

# Dependencies first, hash-checked, so code changes don't reinstall them.
COPY requirements.lock ./
RUN pip install --require-hashes -r requirements.lock

COPY pyproject.toml README.md ./
COPY sprout ./sprout
COPY prompts ./prompts
# Editable, so the prompts/ folder beside the code is found (and can be edited in place).
RUN pip install --no-deps -e .

RUN useradd --create-home --uid 10001 sprout && mkdir -p /data && chown sprout /data
USER sprout
VOLUME ["/data"]
EXPOSE 5000

CMD ["sh", "-c", "exec sprout serve --port \"${PORT}\""]
