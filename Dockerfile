# dpg-mcp: stdio by default. `docker run -i --rm -e DPG_TOKEN=… dpg-mcp`, or `docker run -i --rm dpg-mcp --sandbox`.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md llms.txt ./
COPY dpg_mcp ./dpg_mcp
COPY prompts ./prompts
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 dpg
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER dpg
ENTRYPOINT ["dpg-mcp"]
