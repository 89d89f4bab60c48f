"""Model footprints (GPU MiB one loaded model holds): the original sample's, and those the
benchmark measured (``python -m bench.run`` JSON)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import CostError

#: The original sample's GPU memory per model on an A10G (ml.g5.2xlarge), from the post's table.
ORIGINAL_SAMPLE_FOOTPRINTS_MIB = {"sam": 3362.0, "sd": 3910.0, "lama": 852.0}


def footprints_from_results(results: str | Path | Mapping[str, Any], allow_cpu: bool = False) -> dict[str, float]:
    """Per-model footprint (MiB) from a benchmark JSON of ``python -m bench.run``.

    Uses each model's ``handler`` run ``memory.footprint_mib``. A CPU run measures peak RSS, not
    GPU memory: refused unless ``allow_cpu`` (then the RSS stands in, labelled by the caller).
    """
    data, where = _read_results(results)
    kind = (data.get("device") or {}).get("kind")
    if kind != "cuda" and not allow_cpu:
        raise CostError(f"{where} was measured on {kind or 'an unknown device'} (peak RSS, not GPU memory); "
                        "use a GPU run, or --allow-cpu-results to use the RSS as a stand-in")
    out: dict[str, float] = {}
    for name, model in data["models"].items():
        run = ((model or {}).get("runs") or {}).get("handler") or {}
        fp = (run.get("memory") or {}).get("footprint_mib")
        if isinstance(fp, (int, float)) and fp > 0:
            out[name] = float(fp)
    if not out:
        raise CostError(f"{where} holds no model with a measured footprint")
    return out


def _read_results(results: str | Path | Mapping[str, Any]) -> tuple[Mapping[str, Any], str]:
    if isinstance(results, Mapping):
        data, where = results, "results"
    else:
        where = str(results)
        try:
            data = json.loads(Path(results).read_text(encoding="utf-8"))
        except OSError as exc:
            raise CostError(f"cannot read benchmark results {where}: {exc.strerror or exc}") from None
        except json.JSONDecodeError as exc:
            raise CostError(f"benchmark results {where} are not JSON: {exc.msg} (line {exc.lineno})") from None
    if not isinstance(data, Mapping) or not isinstance(data.get("models"), Mapping):
        raise CostError(f"{where} is not a benchmark result (no 'models' object)")
    return data, where
