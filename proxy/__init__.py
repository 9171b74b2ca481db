"""lineage-proxy: an inference sidecar that records lineage and enforces purpose limits."""

__version__ = "0.1.0"
