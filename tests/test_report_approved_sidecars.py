"""The report's "Approved flows" table shows the sidecars each baseline entry approves (`sidecars`): an entry naming
some approves no other sidecar's flow of it (`verify` says `new-sidecar`), and the table showed the entry as if it
approved the flow wherever it was recorded, so a reviewer could not see why a flow it lists is unapproved."""

from __future__ import annotations

import re
from pathlib import Path

from proxy.baseline import parse_baseline
from proxy.config import parse
from proxy.report import render
from proxy.verify import read_edges
from tests.test_baseline_sidecars import ONLY_A
from tests.test_readers_sidecar import cli, fleet
from tests.test_report import browse, console

CONFIG = """listen: {{http: "127.0.0.1:0"}}
upstreams: [{{name: llama, url: "http://127.0.0.1:9/v1"}}]
routes: [{{model: "*", upstream: llama}}]
policy: {{anonymous: allow, default_purpose: assistant}}
telemetry: {{exporter: none}}
lineage: {{store: "{store}"}}
"""


def approved(page: str) -> tuple[list[str], list[list[str]]]:
    """The Approved flows table: its head, and each row's cells as text."""
    found = re.search(r"<h3>Approved flows</h3>(.*?)</table>", page, re.S)
    assert found is not None, page[-3000:]
    head = re.findall(r"<th>(.*?)</th>", found.group(1))
    rows = [[re.sub(r"<[^>]+>", "", cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row)]
            for row in re.findall(r"<tr>(.*?)</tr>", found.group(1).split("<tbody>")[1])]  # fmt: skip
    return head, rows


def test_the_approved_flows_table_names_the_sidecars_an_entry_approves(tmp_path: Path) -> None:
    store = fleet(tmp_path)  # model-a-eu and model-b-us both served the allowed flow; model-b-us refused the other
    baseline, config = tmp_path / "baseline.yaml", tmp_path / "proxy.yaml"
    baseline.write_text(ONLY_A)  # the allowed flow approved for model-a-* only
    config.write_text(CONFIG.format(store=store))
    out = tmp_path / "report.html"
    done = cli("report", "--store", str(store), "--config", str(config), "--baseline", str(baseline), "--out", str(out))
    assert done.returncode == 0, done.stderr
    page = out.read_text(encoding="utf-8")
    head, rows = approved(page)
    assert head == ["entry", "caller", "purpose", "labels", "checkpoints", "decisions", "sidecars", "in this window"]
    assert [(row[1], row[6], row[7]) for row in rows] == [
        ("glasses-app", "model-a-*", "seen"), ("eval-batch", "any sidecar", "seen")
    ]  # fmt: skip
    # the flow the table lists as approved for model-a-* is unapproved for model-b-us, and the report says so
    assert "new-sidecar" in page[page.index('<section id="unapproved">') :]
    # in a real browser: it renders, no console error, and the column is there
    dom = browse(out, tmp_path / "profile", "--dump-dom")
    assert dom.returncode == 0 and console(dom.stderr) == [], dom.stderr[-2000:]
    assert approved(dom.stdout)[0] == head
    shot = tmp_path / "approved.png"
    taken = browse(out, tmp_path / "profile2", f"--screenshot={shot}", "--window-size=1300,3000")
    assert taken.returncode == 0 and shot.stat().st_size > 0, taken.stderr[-2000:]


def test_edges_before_names_are_said_so_and_a_baseline_naming_no_sidecars_has_no_column(tmp_path: Path) -> None:
    store = fleet(tmp_path)
    config = parse(CONFIG.format(store=store))
    rows = read_edges(str(store))
    named = parse_baseline(ONLY_A.replace('["model-a-*"]', "['', model-b-us]"))
    head, cells = approved(render(rows, store="fleet.db", window="all", config=config, baseline=named))
    assert "sidecars" in head and cells[0][6] == "(none named), model-b-us"
    anyone = parse_baseline(ONLY_A.replace('    sidecars: ["model-a-*"]\n', ""))
    head, cells = approved(render(rows, store="fleet.db", window="all", config=config, baseline=anyone))
    assert head == ["entry", "caller", "purpose", "labels", "checkpoints", "decisions", "in this window"]
    assert [len(row) for row in cells] == [7, 7]
