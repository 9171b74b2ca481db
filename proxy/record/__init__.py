"""The record of every call: OpenTelemetry spans (sampled) and lineage edges (never sampled)."""


# export.py's error lives here, not beside its code: a compiled module (setup.py) cannot define a subclass
# of a built-in error such as ConnectionError. `from proxy.record.export import ExportRefused` still works
class ExportRefused(ConnectionError):
    """The backend answered a batch with an error status; `retryable` per the OTLP spec."""

    def __init__(self, status: str, retryable: bool, retry_after_s: float | None = None, hint: str = "") -> None:
        super().__init__(f"OTLP export answered {status}")
        self.retryable = retryable
        self.retry_after_s = retry_after_s
        self.hint = hint  # what to do, said after the status however long that is
