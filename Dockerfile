# newsbot: posts a newsroom's new articles to its social channels.
#   docker build -t newsbot .
#   docker run -v newsbot-state:/data -v $PWD/newsbot.yaml:/config/newsbot.yaml:ro \
#     -e TELEGRAM_BOT_TOKEN=... -p 8080:8080 newsbot
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    NEWSBOT_CONFIG=/config/newsbot.yaml \
    NEWSBOT_DATABASE=sqlite:////data/newsbot.db

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY adapters ./adapters
COPY standins ./standins
COPY consoles ./consoles
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin newsbot \
    && mkdir -p /data /config \
    && chown newsbot /data

USER newsbot
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
    CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/health/ready').status != 200)"
ENTRYPOINT ["newsbot"]
CMD ["run"]
