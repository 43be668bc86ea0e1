"""`make demo` as a test, with the short profile (DEMO_PROFILE=short): from nothing to a
report and back to nothing. The demo starts its own cluster and PostgreSQL (under a
temporary DEMO_STATE), so this test uses no fixtures, and it is skipped on a given
cluster (E2E_CLUSTER=kubeconfig, kind). It never asserts a duration.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg
import pytest
from PIL import Image

from tests.fixtures.cluster import process_node_only

pytestmark = [
    pytest.mark.e2e,
    process_node_only(
        "`make demo` starts its own control plane, process node and PostgreSQL; on a given"
        " cluster the chart install and the other e2e tests cover the same path"
    ),
]
REPO = Path(__file__).resolve().parents[2]


def test_make_demo_short_profile(tmp_path: Path) -> None:
    # Under /tmp, not pytest's 0700 basetemp: the `postgres` user must reach the data dir.
    state = Path(tempfile.mkdtemp(prefix="backlog-demo-"))
    state.chmod(0o711)
    env = dict(
        os.environ,
        DEMO_PROFILE="short",
        DEMO_OUT=str(tmp_path / "reports"),
        DEMO_STATE=str(state / "demo"),
    )
    env.pop("KEEP", None)
    try:
        done = subprocess.run(
            ["make", "--no-print-directory", "demo"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
    finally:
        leftover = (state / "demo").exists()
        shutil.rmtree(state, ignore_errors=True)
    out = done.stdout
    assert done.returncode == 0, out[-6000:] + done.stderr[-4000:]
    # The steps ran in order, and the results table came out.
    steps = re.findall(r"^==> (.*)$", out, re.MULTILINE)
    assert steps[0] == "throw-away PostgreSQL + migrations" and steps[-1] == "teardown"
    assert any(s.startswith("ScaleTest spike-2x (short profile)") for s in steps)
    assert "ScaleTest uploads/spike-2x: results" in out
    verdict = re.search(r"^verdict\s+(Passed|Failed)$", out, re.MULTILINE)
    assert verdict is not None, out[-4000:]
    assert re.search(r"^SLO maxLostJobs\s+met: 0", out, re.MULTILINE)
    # Quiet when not on a terminal: one progress line per phase, no rich live frames.
    phases = re.findall(r"^\[\s*[\d.]+s\] (\w+)", out, re.MULTILINE)
    assert phases[-1] in {"Succeeded", "Failed"} and len(phases) == len(set(phases))
    assert "\x1b[" not in out
    # The doctor agreed the setup was healthy while it ran.
    assert re.search(r"^\d+ checks: 0 failed", out, re.MULTILINE)
    # The report: structure, and valid charts.
    (report,) = (tmp_path / "reports").glob("spike-2x-*/report.md")
    text = report.read_text()
    for heading in (
        "## Summary and verdict",
        "## Per-stage baselines",
        "## Bottleneck",
        "## Optimizations from evidence",
        "## Scaling validation",
    ):
        assert heading in text
    assert f"**{verdict.group(1)}**" in text
    # The demo hands the report its scalers: the simulated comparison is filled in.
    assert "| simulated, ours | simulated, KEDA defaults |" in text
    for name in ("backlog.png", "replicas.png", "throughput.png", "latency.png"):
        with Image.open(report.parent / name) as image:
            image.verify()
    # Torn down: the state folder went, and the database no longer answers.
    assert not leftover
    (dsn,) = re.findall(r"^    (postgresql://\S+)$", out, re.MULTILINE)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(dsn, connect_timeout=3).close()
    assert "done in" in out.split("==> teardown")[1]
