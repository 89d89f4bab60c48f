"""The cost planner (mme/cost/): the AWS post's example exactly, capacity from GPU memory,
price overrides, edge cases, and the CLI's one-line errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mme import cost
from mme_constructs.instance_types import GPU_INSTANCE_TYPES, SUPPORTED_INSTANCE_TYPES, GpuInstanceType

REPO = Path(__file__).resolve().parents[2]


def test_post_example_exact():
    plan = cost.post_example()
    assert plan.single_model_monthly == 218_880.00
    assert plan.multi_model_monthly == 54_720.00
    assert (plan.single_model_endpoints, plan.single_model_instances) == (100, 200)
    assert (plan.multi_model_groups, plan.multi_model_instances) == (25, 50)
    assert plan.models_per_instance == 4
    assert plan.hours_per_month == 720 == cost.HOURS_PER_MONTH_POST
    assert plan.saving_fraction == pytest.approx(0.75)
    assert plan.saving_monthly == 164_160.00
    assert plan.notes == []  # 4 x 3,910 MiB fits a 24 GiB A10G
    assert plan.price_per_hour == 1.52 and plan.price_as_of == "2023-09-06" and "TorchServe" in plan.price_source


def test_post_example_with_the_calculator_month():
    plan = cost.plan_costs([cost.ModelGroup("sd", 100, 3910)], "ml.g5.2xlarge", price_per_hour=1.52,
                           hours_per_month=cost.HOURS_PER_MONTH_CALCULATOR, models_per_instance_override=4)
    assert (plan.single_model_monthly, plan.multi_model_monthly) == (221_920.00, 55_480.00)


def test_default_price_table_has_the_posts_price_and_sources():
    price = cost.DEFAULT_PRICE_TABLE.price("ml.g5.2xlarge")
    assert price.usd_per_hour == 1.52 and price.as_of == "2023-09-06" and price.region == "us-east-1"
    for entry in cost.DEFAULT_PRICE_TABLE.prices.values():
        assert entry.source and entry.as_of
    plan = cost.plan_costs([cost.ModelGroup("sd", 100, 3910)], models_per_instance_override=4)
    assert plan.multi_model_monthly == 54_720.00 and "2023-09-06" == plan.price_as_of


def test_models_per_instance_from_memory():
    # 24 GiB A10G, 10% headroom -> 22,118 MiB usable
    assert cost.models_per_instance(3910, "ml.g5.2xlarge") == 5
    assert cost.models_per_instance(3910, "ml.g5.2xlarge", headroom=0.35) == 4
    assert cost.models_per_instance(852, "ml.g5.2xlarge") == 25
    plan = cost.plan_costs([cost.ModelGroup("sd", 100, 3910)], "ml.g5.2xlarge")
    assert plan.models_per_instance == 5 and plan.multi_model_groups == 20
    assert plan.multi_model_monthly == round(20 * 2 * 1.52 * 720, 2)


#: models of 3,910 MiB (SD2 inpaint in the original sample) per instance with 10 % headroom, by GPU memory
SD_PER_INSTANCE = {16: 3, 24: 5}  # floor(16,384 x 0.9 / 3,910), floor(24,576 x 0.9 / 3,910)


@pytest.mark.parametrize("name", SUPPORTED_INSTANCE_TYPES)
def test_every_supported_type_is_planned_on_its_one_gpu(name):
    memory = GPU_INSTANCE_TYPES[name].gpu_memory_gib
    plan = cost.plan_costs([cost.ModelGroup("sd", 100, 3910)], name, price_per_hour=1.0)
    assert (plan.instance_type, plan.gpu_memory_mib) == (name, memory * 1024)
    assert plan.models_per_instance == SD_PER_INSTANCE[memory]
    assert plan.multi_model_groups == -(-100 // SD_PER_INSTANCE[memory]) and plan.notes == []
    assert f"(1 x {GPU_INSTANCE_TYPES[name].gpu_model}, {memory * 1024:,} MiB;" in plan.format_text()


@pytest.mark.parametrize(("name", "message"), [
    ("ml.g5.12xlarge", "ml.g5.12xlarge has 4 GPUs; GPU multi-model endpoints run on single-GPU instance types only"),
    ("ml.p3.16xlarge", "has 8 GPUs"),
    ("ml.p2.xlarge", "cannot run the serving image"),
    ("ml.g6.2xlarge", "not a GPU instance type AWS documents"),
])
def test_types_an_endpoint_cannot_use_are_refused(name, message):
    with pytest.raises(cost.CostError, match=re.escape(message) + ".*supported: ml.p3.2xlarge"):
        cost.plan_costs([cost.ModelGroup("sd", 1, 3910)], name, price_per_hour=1.0)


def test_an_undocumented_type_is_planned_from_its_given_facts():
    l40s = GpuInstanceType("ml.g6e.xlarge", "NVIDIA L40S", 48, instance_storage=True)
    plan = cost.plan_costs([cost.ModelGroup("sd", 100, 3910)], l40s, price_per_hour=2.0)
    assert plan.instance_type == "ml.g6e.xlarge" and plan.models_per_instance == 11  # 44,237 MiB usable
    assert plan.notes == ["ml.g6e.xlarge is not documented by AWS for GPU multi-model endpoints; "
                          "its GPU memory is as given"]


def test_model_bigger_than_a_gpu_is_a_clear_error():
    with pytest.raises(cost.CostError, match=r"needs 20,000 MiB but the GPU of ml.g4dn.xlarge \(NVIDIA T4\) has "
                                             r"14,746 MiB usable .* choose a type with a larger GPU \(ml.g5.xlarge,"):
        cost.plan_costs([cost.ModelGroup("big", 3, 20000)], "ml.g4dn.xlarge", price_per_hour=1.0)
    with pytest.raises(cost.CostError, match=r"needs 30,000 MiB but the GPU of ml.g5.2xlarge .* 22,118 MiB usable.*"
                                             r"no supported instance type's GPU holds it"):
        cost.plan_costs([cost.ModelGroup("big", 3, 30000)], "ml.g5.2xlarge")
    # fits on a 48 GiB L40S described by the caller
    l40s = GpuInstanceType("ml.g6e.xlarge", "NVIDIA L40S", 48, instance_storage=True)
    plan = cost.plan_costs([cost.ModelGroup("big", 3, 30000)], l40s, price_per_hour=2.0)
    assert plan.models_per_instance == 1 and plan.multi_model_instances == plan.single_model_instances


def test_stated_count_that_does_not_fit_is_noted():
    plan = cost.plan_costs([cost.ModelGroup("sd", 10, 8000)], "ml.g5.2xlarge", models_per_instance_override=4)
    assert any("exceed" in n for n in plan.notes)


def test_price_override_and_missing_price():
    plan = cost.plan_costs([cost.ModelGroup("sd", 100, 3910)], "ml.g5.2xlarge", price_per_hour=2.0,
                           models_per_instance_override=4)
    assert (plan.single_model_monthly, plan.multi_model_monthly) == (288_000.00, 72_000.00)
    assert plan.price_source == "given by the user"
    with pytest.raises(cost.CostError, match="no price for ml.g4dn.xlarge.*--price-per-hour"):
        cost.plan_costs([cost.ModelGroup("sd", 1, 3910)], "ml.g4dn.xlarge")
    with pytest.raises(cost.CostError, match="not a GPU instance type"):
        cost.plan_costs([cost.ModelGroup("sd", 1, 3910)], "ml.m5.large", price_per_hour=1.0)


@pytest.mark.parametrize("kwargs, message", [
    ({"price_per_hour": -1.0}, "price per hour"),
    ({"price_per_hour": float("nan")}, "price per hour"),
    ({"instances_per_endpoint": 0}, "instances per endpoint"),
    ({"hours_per_month": 0}, "hours per month"),
    ({"headroom": 1.0}, "headroom"),
    ({"models_per_instance_override": 0}, "models per instance"),
])
def test_bad_inputs(kwargs, message):
    with pytest.raises(cost.CostError, match=message):
        cost.plan_costs([cost.ModelGroup("sd", 1, 3910)], "ml.g5.2xlarge", **{"price_per_hour": 1.0, **kwargs})


def test_bad_model_groups():
    with pytest.raises(cost.CostError, match="count"):
        cost.plan_costs([cost.ModelGroup("sd", 0, 3910)], price_per_hour=1.0)
    with pytest.raises(cost.CostError, match="footprint"):
        cost.plan_costs([cost.ModelGroup("sd", 1, -5)], price_per_hour=1.0)
    with pytest.raises(cost.CostError, match="no footprint"):
        cost.plan_costs([cost.ModelGroup("sd", 1, None)], price_per_hour=1.0)
    with pytest.raises(cost.CostError, match="no models"):
        cost.plan_costs([], price_per_hour=1.0)


def test_mixed_footprints_are_packed():
    sample = cost.ORIGINAL_SAMPLE_FOOTPRINTS_MIB  # 3,362 + 3,910 + 852 MiB: one A10G holds all three
    plan = cost.plan_costs([cost.ModelGroup(n, 1, fp) for n, fp in sample.items()], "ml.g5.2xlarge")
    assert plan.multi_model_groups == 1 and plan.single_model_endpoints == 3 and plan.models_per_instance is None
    big = cost.plan_costs([cost.ModelGroup("a", 3, 12000), cost.ModelGroup("b", 3, 9000)], "ml.g5.2xlarge")
    assert big.multi_model_groups == 3  # 12,000 + 9,000 per GPU
    assert cost.pack_instances([12000, 12000, 9000, 9000], "ml.g5.2xlarge") == 2  # one GPU per instance


def test_price_file_json_and_yaml(tmp_path):
    j = tmp_path / "prices.json"
    j.write_text(json.dumps({"region": "eu-west-1", "as_of": "2026-11-24", "source": "my quote",
                             "prices": {"ml.g4dn.2xlarge": 1.25, "ml.g5.2xlarge": {"usd_per_hour": 1.7, "as_of": "2026-10-01"}}}))
    table = cost.load_price_table(j)
    assert table.price("ml.g4dn.2xlarge").usd_per_hour == 1.25
    assert table.price("ml.g4dn.2xlarge").region == "eu-west-1"
    assert table.price("ml.g5.2xlarge").as_of == "2026-10-01"
    plan = cost.plan_costs([cost.ModelGroup("sd", 100, 3910)], "ml.g4dn.2xlarge", price_table=table,
                           models_per_instance_override=4)
    assert plan.single_model_monthly == 180_000.00 and plan.price_source == "my quote"
    y = tmp_path / "prices.yaml"
    y.write_text("as_of: '2026-11-24'\nprices:\n  ml.g5.2xlarge: 1.6\n")
    assert cost.load_price_table(y).price("ml.g5.2xlarge").usd_per_hour == 1.6
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(cost.CostError, match="not valid"):
        cost.load_price_table(bad)
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"prices": {}}))
    with pytest.raises(cost.CostError, match="non-empty 'prices'"):
        cost.load_price_table(empty)
    neg = tmp_path / "neg.json"
    neg.write_text(json.dumps({"prices": {"ml.g5.2xlarge": -1}}))
    with pytest.raises(cost.CostError, match="positive"):
        cost.load_price_table(neg)


def _results(kind: str) -> dict:
    run = {"memory": {"metric": "x", "footprint_mib": 4100.0}}
    return {"schema": "mme-bench/1", "device": {"kind": kind},
            "models": {"sd": {"runs": {"handler": run}}, "sam": {"runs": {"handler": {"error": "boom"}}}}}


def test_footprints_from_results(tmp_path):
    assert cost.footprints_from_results(_results("cuda")) == {"sd": 4100.0}
    with pytest.raises(cost.CostError, match="measured on cpu"):
        cost.footprints_from_results(_results("cpu"))
    assert cost.footprints_from_results(_results("cpu"), allow_cpu=True) == {"sd": 4100.0}
    path = tmp_path / "r.json"
    path.write_text(json.dumps(_results("cuda")))
    assert cost.footprints_from_results(path) == {"sd": 4100.0}
    with pytest.raises(cost.CostError, match="not a benchmark result"):
        cost.footprints_from_results({"foo": 1})


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mme.cost", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=60)


def test_cli_post_example_and_formats(tmp_path):
    out = _cli("--example", "post")
    assert out.returncode == 0, out.stderr
    assert "$218,880/month" in out.stdout and "$54,720/month" in out.stdout and "720 h" in out.stdout
    md = _cli("--footprint", "sd=3910", "--footprint", "lama=852", "--format", "markdown")
    assert md.returncode == 0 and md.stdout.startswith("| scenario |")
    assert "| 100 x sd (3,910 MiB) | ml.g5.2xlarge | $1.52 | 100 | 5 |" in md.stdout
    assert "100 of each together" in md.stdout
    js = _cli("--models-per-instance", "4", "--count", "100", "--price-per-hour", "1.52", "--format", "json")
    data = json.loads(js.stdout)
    assert data[0]["single_model_monthly"] == 218880.0 and data[0]["multi_model_monthly"] == 54720.0
    results = tmp_path / "gpu.json"
    results.write_text(json.dumps(_results("cuda")))
    rs = _cli("--results", str(results))
    assert rs.returncode == 0 and "100 x sd (4,100 MiB)" in rs.stdout


@pytest.mark.parametrize("args, message", [
    (["--footprint", "30000"], "needs 30,000 MiB"),
    (["--footprint", "3000", "--instance-type", "ml.g4dn.xlarge"], "no price for ml.g4dn.xlarge"),
    (["--footprint", "3000", "--instance-type", "ml.g5.48xlarge", "--price-per-hour", "1"], "has 8 GPUs"),
    (["--footprint", "3000", "--instance-type", "ml.x9.large", "--price-per-hour", "1"], "not a GPU instance type"),
    (["--footprint", "3000", "--prices", "/nonexistent/prices.json"], "cannot read price file"),
    (["--results", "/nonexistent/r.json"], "cannot read benchmark results"),
    ([], "give --example post"),
])
def test_cli_errors_are_one_line(args, message):
    out = _cli(*args)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mme cost: error: ") and message in lines[0], out.stderr
    assert out.stdout == ""


def test_mme_console_script_has_the_cost_subcommand():
    ok = subprocess.run([sys.executable, "-m", "mme.cli", "cost", "--example", "post"], cwd=REPO,
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert "$218,880/month" in ok.stdout and "$54,720/month" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "mme.cli", "cost", "--footprint", "99999"], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0
    assert bad.stderr.startswith("mme cost: error: model 'model' needs 99,999 MiB")
