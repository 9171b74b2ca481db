FROM python:3.11-slim
WORKDIR /src
COPY pyproject.toml README.md ./
COPY proxy ./proxy
RUN pip install --no-cache-dir . && useradd -r lineage && mkdir -p /var/lib/lineage-proxy && chown lineage /var/lib/lineage-proxy
USER lineage
EXPOSE 8080 8081 9464
ENTRYPOINT []
CMD ["lineage-proxy", "serve", "--config", "/etc/lineage-proxy/proxy.yaml"]
