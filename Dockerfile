# The compiled build (README, Performance: ~0.54x the CPU a call of the pure one) needs a C compiler and
# Python's headers, which the full image has: the wheel is built there and installed in the slim image.
FROM python:3.11 AS build
WORKDIR /src
COPY pyproject.toml setup.py README.md LICENSE ./
COPY proxy ./proxy
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels \
    && useradd -r -d /var/lib/lineage-proxy lineage && mkdir -p /var/lib/lineage-proxy \
    && chown lineage /var/lib/lineage-proxy
# the user's home is that directory too: `serve` keeps its listen claims in ~/.cache/lineage-proxy (a system user's
# default home, /home/lineage, is never made, and without it a second proxy starting at once went unseen)
# where relative paths land (the default lineage.store ./lineage.db, lineage.journal ./lineage-journal.db): the
# image's / is not the user's to write
WORKDIR /var/lib/lineage-proxy
USER lineage
EXPOSE 8080 8081 9464
ENTRYPOINT []
CMD ["lineage-proxy", "serve", "--config", "/etc/lineage-proxy/proxy.yaml"]
