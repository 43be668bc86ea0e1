"""`backlog-operator simulate`: table, --json shape, --plot, and one-line errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from backlog_operator.cli import main
from backlog_operator.sim import results

STEP = "second,arrivals\n" + "".join(f"{s},{2 if s < 20 else 8}\n" for s in range(60))


def _invoke(*args: str) -> tuple[int, str]:
    outcome = CliRunner().invoke(main, ["simulate", *args])
    assert not isinstance(outcome.exception, Exception) or isinstance(
        outcome.exception, SystemExit
    ), outcome.exception  # never a traceback
    return outcome.exit_code, outcome.output


@pytest.fixture
def trace(tmp_path: Path) -> Path:
    path = tmp_path / "step.csv"
    path.write_text(STEP)
    return path


def test_compare_writes_the_issue_json_shape(trace: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    code, text = _invoke("--trace", str(trace), "--compare", "keda-default", "--json", str(out))
    assert code == 0, text
    assert "ours/keda-default" in text and "p95_wait_s" in text
    doc = json.loads(out.read_text())
    assert set(doc["policies"]) == {"ours", "keda-default"}
    for metrics in doc["policies"].values():
        assert tuple(metrics) == results.JSON_KEYS
    assert set(doc) == {"policies"}


def test_series_are_per_second(trace: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    code, _ = _invoke("--trace", str(trace), "--json", str(out), "--series")
    assert code == 0
    series = json.loads(out.read_text())["series"]["ours"]
    assert series["arrivals"][:60] == [2] * 20 + [8] * 40
    assert len(series["backlog"]) == len(series["replicas"]) >= 60


def test_scaler_and_scaled_object_files(trace: Path, tmp_path: Path) -> None:
    scaler = tmp_path / "bs.yaml"
    scaler.write_text("kind: BacklogScaler\nspec:\n  maxReplicas: 3\n  listen: false\n")
    scaled = tmp_path / "so.yaml"
    scaled.write_text(
        "kind: ScaledObject\nspec:\n  maxReplicaCount: 2\n"
        "  triggers:\n  - type: postgresql\n    metadata: {targetQueryValue: '5'}\n"
    )
    out = tmp_path / "out.json"
    code, text = _invoke(
        "--trace", str(trace), "--scaler", str(scaler), "--compare", str(scaled), "--json", str(out)
    )
    assert code == 0, text
    assert set(json.loads(out.read_text())["policies"]) == {"ours", "so"}
    assert "max_replicas" in text


@pytest.mark.parametrize(
    ("content", "flag", "fragment"),
    [
        ("second,arrivals\n0,1\n1,x\n", "--trace", "line 3"),
        ("spec:\n  maxReplicas: [\n", "--scaler", "line 3"),
        ("spec:\n  maxReplicas: 0\n", "--scaler", "spec.maxReplicas"),
        ("kind: Deployment\n", "--scaler", "expected BacklogScaler"),
        ("spec:\n  triggers: []\n", "--compare", "spec.triggers"),
    ],
)
def test_bad_files_give_one_line_errors(
    trace: Path, tmp_path: Path, content: str, flag: str, fragment: str
) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text(content)
    args = {"--trace": ["--trace", str(bad)]}.get(flag, ["--trace", str(trace), flag, str(bad)])
    code, text = _invoke(*args)
    assert code == 2
    error = [line for line in text.splitlines() if line.startswith("Error:")]
    assert len(error) == 1 and flag in error[0] and fragment in error[0], text
    assert "Traceback" not in text


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--service-time", "1:Gamma"], "--service-time"),
        (["--startup-seconds", "-1"], "--startup-seconds"),
        (["--compare", "keda-custom"], "--compare"),
    ],
)
def test_bad_values_name_the_flag(trace: Path, args: list[str], fragment: str) -> None:
    code, text = _invoke("--trace", str(trace), *args)
    assert code == 2
    assert fragment in text and "Traceback" not in text


def test_plot_writes_a_png(trace: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    png = tmp_path / "out.png"
    code, text = _invoke("--trace", str(trace), "--compare", "keda-default", "--plot", str(png))
    assert code == 0, text
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_says_how_to_install(
    trace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails
    code, text = _invoke("--trace", str(trace), "--plot", str(tmp_path / "x.png"))
    assert code == 1
    assert "backlog-operator[report]" in text and "Traceback" not in text
