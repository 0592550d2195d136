# One image for the Puhui worker, API and simulator (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# Only what `pip install .` needs: not .venv/ or var/ (local broker and database state).
COPY pyproject.toml README.md ./
COPY models/ models/
COPY alerts/ alerts/
COPY streams/ streams/
COPY infra/ infra/
COPY api/ api/
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /var/lib/puhui puhui \
    && mkdir -p /var/lib/puhui/photos \
    && chown -R puhui:puhui /var/lib/puhui

# Run outside /src so that the installed package is what gets imported.
WORKDIR /var/lib/puhui
ENV PUHUI_STATE_DIR=/var/lib/puhui
USER puhui
EXPOSE 8080 6066
CMD ["puhui", "worker"]
