# dpg-mcp. Default: streamable HTTP for a team on port 8000, each request's bearer DPG token is its caller:
#   docker run -p 8000:8000 -e REDIS_URL=redis://… dpg-mcp
# stdio for one user (any argument replaces the HTTP command; --stdio says it plainly):
#   docker run -i --rm -e DPG_TOKEN=… dpg-mcp --stdio        docker run -i --rm dpg-mcp --sandbox
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md llms.txt ./
COPY dpg_mcp ./dpg_mcp
COPY prompts ./prompts
RUN pip wheel --no-cache-dir --wheel-dir /wheels '.[hosted]'

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 dpg
COPY --from=build /wheels /wheels
# The versions are the wheels built above (--no-index): nothing floats.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir --no-index --find-links /wheels 'dpg-mcp[hosted]' && rm -rf /wheels
USER 10001
WORKDIR /home/dpg
ENV PYTHONUNBUFFERED=1 \
    DPG_MCP_HOST=0.0.0.0 \
    DPG_MCP_PORT=8000
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('DPG_MCP_PORT', '8000'), timeout=4)"]
ENTRYPOINT ["dpg-mcp"]
CMD ["serve", "--transport", "http"]
