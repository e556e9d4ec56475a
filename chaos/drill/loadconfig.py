"""The load generator's configuration, as the drill runner writes it for `chaos.drill.loadgen` (a JSON
file: the load generator runs in processes of its own, with Locust, which this process never imports).

Per feature: its ``inputs`` (its fixed request, and each sendable case of its eval set with the
case's index and the field holding its answer; a user draws one at random a request), how an
answer is judged full or degraded, its weight or rate, and ``sample_slot``: how often an answer
carries its body back to be checked (`chaos.drill.sampling`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chaos.drill.sampling import slot_seconds
from chaos.drill.spec import DrillSpec, EvalSet


def load_inputs(spec: DrillSpec, feature: str, eval_set: EvalSet | None) -> list[dict[str, Any]]:
    """What the load generator sends for ``feature``, one drawn at random a request: its fixed request
    and each case's ``http`` (with ``case``, the case's index, and ``answer``, its answer's field)."""
    f = spec.features[feature]
    inputs = []
    if f.request is not None:
        r = f.request
        inputs.append({"method": r.method, "path": r.path, "json": r.json_body, "headers": r.headers,
                       "answer": None, "case": None})
    for i, case in enumerate(eval_set.cases if eval_set else ()):
        http = case.http
        assert http is not None  # `read_eval_set` keeps only these
        inputs.append({"method": http.method, "path": http.path, "json": http.json_body, "headers": {},
                       "answer": http.answer, "case": i})
    return inputs


def load_config(spec: DrillSpec, eval_sets: dict[str, EvalSet], *, records_dir: Path, workers: int,
                master_port: int) -> dict[str, Any]:
    """The whole configuration (JSON-ready)."""
    return {
        "base_url": spec.product.base_url.rstrip("/"),
        "features": {name: {"inputs": load_inputs(spec, name, eval_sets.get(name)), "expect": f.expect.model_dump(),
                            "degraded_when": f.degraded_when.model_dump() if f.degraded_when else None,
                            "weight": f.weight, "rate": f.rate, "sample_slot": slot_seconds(spec, name)}
                     for name, f in spec.features.items()},
        "users": spec.load.users, "spawn_rate": spec.load.spawn_rate, "wait": spec.load.wait,
        "run_time": spec.duration + spec.guards.max_duration, "records_dir": str(records_dir),
        "workers": workers, "master_host": "127.0.0.1", "master_port": master_port,
    }
