"""A baseline entry approving only calls whose checkpoint is unknown (`checkpoints: ['']`, what `verify
--write-baseline` writes for a flow whose upstream failed or whose reply named none) was read as approving every
checkpoint (`''.strip('*') == ''`): with `on_unapproved: block`, a call whose checkpoint the upstream's metadata had
not named yet was forwarded as approved instead of refused with 503 checkpoint_unknown, whatever weights then
served it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx

from proxy.baseline import Flow, parse_baseline
from tests.harness import ProxyHandle
from tests.servers.vllm_like import VllmLike
from tests.test_check_explain import explain, write

NONE_KNOWN = """version: 1
flows:
  - caller: anonymous
    purpose: assistant
    checkpoints: ['']  # none known: the upstream failed (502/504) or its reply named none
"""


def test_an_entry_for_no_known_checkpoint_approves_no_other_checkpoint() -> None:
    baseline = parse_baseline(NONE_KNOWN)
    (entry,) = baseline.approvals
    assert entry.checkpoints == ("",) and not entry.any_checkpoint
    waiting = Flow("anonymous", "assistant", frozenset(), None, "allow")
    assert not baseline.approves_any_checkpoint(waiting)
    assert baseline.covering(Flow("anonymous", "assistant", frozenset(), "", "allow")) is not None
    assert baseline.covering(Flow("anonymous", "assistant", frozenset(), "org/other", "allow")) is None
    for anything in ("*", "**"):  # patterns of `*` alone still approve every checkpoint
        widened = parse_baseline(NONE_KNOWN.replace("['']", f"['{anything}']"))
        assert widened.approvals[0].any_checkpoint and widened.approves_any_checkpoint(waiting)


def test_block_refuses_a_call_whose_checkpoint_is_not_named_yet_under_such_an_entry(
    vllm: tuple[VllmLike, str], make_proxy: Callable[..., ProxyHandle], tmp_path: Path
) -> None:
    server, upstream = vllm
    config = write(tmp_path, upstream, checkpoint="")
    assert 'checkpoints: [""]' in (tmp_path / "baseline.yaml").read_text()
    proxy = make_proxy(config.read_text())
    served = httpx.post(f"{proxy.url}/v1/chat/completions", json={"model": "unlisted", "messages": []}, timeout=10)
    assert served.status_code == 503 and served.json()["error"]["code"] == "checkpoint_unknown", served.text
    assert not [r for r in server.data_requests() if r.path.endswith("/completions")]
    said = explain(config, "--model", "unlisted")
    assert said.returncode == 2 and "code:      checkpoint_unknown" in said.stdout, said.stdout
