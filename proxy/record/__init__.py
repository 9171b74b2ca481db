"""The record of every call: OpenTelemetry spans (sampled) and lineage edges (never sampled)."""
