"""checkov over the templates the real ``cdk synth`` writes, with the checked-in configuration
(.checkov.yaml): no failed check, and every skip there is a reviewed finding of exactly the resources
it was reviewed for (a skip that stops matching, or a skipped check that fires on anything else,
fails). checkov runs from its own virtual environment, .venv-checkov/ (see requirements-checkov.txt)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from stack_helpers import REPO_ROOT

CHECKOV = Path(os.environ.get("MME_CHECKOV") or REPO_ROOT / ".venv-checkov" / "bin" / "checkov")
CONFIG = REPO_ROOT / ".checkov.yaml"
#: The resources each skipped check was reviewed for (logical id prefixes: construct paths).
REVIEWED = {
    "CKV_AWS_18": {"ModelBucketAccessLogs"},
    "CKV_AWS_115": {"ModelArtifactProviderPackager", "ModelArtifactProviderframeworkonEvent"},
    "CKV_AWS_116": {"ModelArtifactProviderPackager", "ModelArtifactProviderframeworkonEvent"},
    "CKV_AWS_117": {"ModelArtifactProviderPackager", "ModelArtifactProviderframeworkonEvent"},
    "CKV_AWS_173": {"ModelArtifactProviderPackager", "ModelArtifactProviderframeworkonEvent"},
}
pytestmark = pytest.mark.synth


def run_checkov(outdir: Path, config: Path) -> dict:
    """checkov's JSON report of ``outdir`` with ``config``: the CloudFormation results."""
    if not CHECKOV.is_file():
        pytest.fail(f"checkov is not installed at {CHECKOV}: run `make test` (it creates .venv-checkov/)")
    proc = subprocess.run([str(CHECKOV), "--config-file", str(config), "-d", str(outdir), "-o", "json"],
                          cwd=outdir, capture_output=True, text=True, timeout=300)
    assert proc.returncode in (0, 1), proc.stdout[-2000:] + proc.stderr[-2000:]  # 1: failed checks
    report = json.loads(proc.stdout)
    (results,) = [r for r in (report if isinstance(report, list) else [report]) if r["check_type"] == "cloudformation"]
    return {**results["results"], "summary": results["summary"]}


def _failed(results: dict) -> set[tuple[str, str]]:
    """(check id, logical id) of every failed check."""
    return {(c["check_id"], c["resource"].split(".", 1)[1]) for c in results.get("failed_checks", [])}


def test_checkov_passes_with_the_reviewed_skips(cli_synth):
    outdir, _ = cli_synth
    results = run_checkov(outdir, CONFIG)
    assert _failed(results) == set(), sorted(_failed(results))
    assert results["summary"]["failed"] == 0 and results["summary"]["passed"] > 50  # it really scanned the stack


def test_each_skip_is_a_finding_of_exactly_the_reviewed_resources(cli_synth, tmp_path):
    outdir, _ = cli_synth
    config = yaml.safe_load(CONFIG.read_text())
    assert set(config["skip-check"]) == set(REVIEWED)
    without_skips = tmp_path / "checkov.yaml"
    without_skips.write_text(yaml.safe_dump({k: v for k, v in config.items() if k != "skip-check"}))
    failed = _failed(run_checkov(outdir, without_skips))
    found: dict[str, set[str]] = {}
    for check_id, logical_id in failed:
        found.setdefault(check_id, set()).add(re.sub(r"[0-9A-F]{8}$", "", logical_id))
    assert found == REVIEWED


def test_each_skip_has_a_reason():
    """Every skipped check id is preceded by a comment that says why (the reviewable record)."""
    lines = CONFIG.read_text().splitlines()
    start = lines.index("skip-check:")
    reason: list[str] = []
    seen = []
    for line in lines[start + 1:]:
        text = line.strip()
        if text.startswith("#"):
            reason.append(text.lstrip("# "))
        elif text.startswith("- "):
            seen.append(text[2:].split("#")[0].strip())
            assert len(" ".join(reason).split()) >= 15, f"{seen[-1]} has no reason worth reviewing"
            reason = []
    assert set(seen) == set(REVIEWED)
