"""``notebooks/quickstart.ipynb`` executed in a real Jupyter kernel (nbclient + ipykernel), and
its outputs checked: what a reader of the walkthrough sees."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

nbformat = pytest.importorskip("nbformat", reason="needs the notebook extra")
nbclient = pytest.importorskip("nbclient", reason="needs the notebook extra")

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "quickstart.ipynb"


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=180, kernel_name="python3",
                                     resources={"metadata": {"path": str(
                                         tmp_path_factory.mktemp("nb"))}})
    client.execute()
    outputs: dict[str, dict[str, Any]] = {}
    for cell in notebook.cells:
        assert not [o for o in cell.get("outputs", []) if o["output_type"] == "error"], cell
        for tag in cell.metadata.get("tags", []):
            data: dict[str, Any] = {}
            for output in cell.outputs:
                data.update(output.get("data", {}))
            outputs[tag] = data
    return outputs


def test_the_trace_view_shows_the_demo_agents_runs(executed: dict[str, dict[str, Any]]) -> None:
    view = executed["trace-view"]["text/html"]
    assert "Run tree (12 spans)" in view and "Errors (2)" in view
    for node in ("profile", "agent", "tools", "tool get_weather", "route agent → tools",
                 "llm anthropic.claude-3-haiku-20240307-v1:0", "retry attempt 2"):
        assert node in view, node
    assert view.count('class="lat-run st-error') == 2


def test_the_plots_are_images(executed: dict[str, dict[str, Any]]) -> None:
    for tag in ("timeline", "costs"):
        assert len(executed[tag].get("image/png", "")) > 1000, tag


def test_the_dataframe_lists_the_two_failed_runs(executed: dict[str, dict[str, Any]]) -> None:
    table = executed["dataframe"]["text/html"]
    body = table.split("<tbody>")[1].split("</tbody>")[0]
    rows = body.split("<tr>")[1:]
    assert len(rows) == 2
    assert "profile" in rows[0] and "ConnectionError" in rows[0]
    assert "profile service timed out" in rows[0]
    assert "tool get_weather" in rows[1] and "ValueError" in rows[1]
    assert "weather service has no station in Atlantis" in rows[1]


def test_the_error_replays_and_the_chain_verifies(executed: dict[str, dict[str, Any]]) -> None:
    replay = executed["replay"]["text/plain"]
    assert "'same': True" in replay and "weather service has no station in Atlantis" in replay
    assert executed["verify"]["text/plain"].startswith("{'ok': True, 'records': ")
    assert "Paris is sunny" in executed["run"]["text/plain"]
