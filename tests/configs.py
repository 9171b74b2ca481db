"""Configs many tests start from: one upstream (`${UPSTREAM}`) serving every model, callers anonymous."""

ONE_UPSTREAM = """
listen: {http: 127.0.0.1:0}
upstreams:
  - name: vllm
    url: ${UPSTREAM}
routes:
  - model: "*"
    upstream: vllm
policy:
  anonymous: allow
  default_purpose: assistant
"""

# the same, its lineage store at `${STORE}`
ONE_UPSTREAM_STORED = ONE_UPSTREAM + "lineage:\n  store: ${STORE}\n"

# the same, the email detector on and a zone that allows its label for `assistant` alone
EMAIL_ZONE_STORED = (
    ONE_UPSTREAM_STORED
    + """zones:
  - name: personal
    labels: [pii:email]
    allow_purposes: [assistant]
detectors: [email]
"""
)

# one gRPC upstream (`${UPSTREAM}`, host:port) serving every model, its checkpoint pinned; a policy to add
ONE_GRPC_UPSTREAM = """
listen: {http: 127.0.0.1:0, grpc: 127.0.0.1:0}
upstreams:
  - name: triton
    grpc: ${UPSTREAM}
    protocol: oip
    checkpoint: held@1
routes:
  - model: "*"
    upstream: triton
"""
