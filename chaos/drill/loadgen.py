"""The drill's load: Locust as a library, headless, in a process of its own.

Run by the drill runner, never imported by it: Locust patches the standard library with
gevent at import. ``python -m chaos.drill.loadgen CONFIG.json --role local|master|worker``.

Each simulated user picks a feature by weight (or, where the drill gives features a rate,
keeps to its own feature's share of that rate), sends one of the feature's inputs (its fixed
request, or a case of its eval set, drawn at random) to the product and judges the answer as
the drill file says (status, a JSON field, the product's own "degraded" marker). Every request
becomes one JSON line in this process's records file (flushed every 0.2 s so the runner can
watch guards live): ``t`` start (wall clock), ``f`` feature, ``ms`` latency, ``ok`` full
answer, ``deg`` degraded answer, ``s`` HTTP status, ``k`` error kind, ``b`` the backend the
product says answered. The runner merges the files of all processes.

Answers are judged against the cases' checks by the runner, after the load (`chaos.drill.judging`),
never here: a check may be slow or call a judge model, and Locust's timings would pay for it.
What this process does is cheap and bounded: of a judged feature's full answers to a case, the
first to end in each ``sample_slot`` seconds (a fixed grid of wall-clock time, so the kept ones
are spread over every phase, not the first N) carries ``c``, the case's index, and ``a``, the
product's whole JSON answer (at most ``max_body`` bytes). The runner keeps a bounded, spread
sample of those per phase (`chaos.drill.sampling`).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import time
from pathlib import Path

import gevent
from locust import FastHttpUser, constant, constant_throughput, events, task
from locust.env import Environment

from chaos.drill.responses import MAX_BODY, Keeper, judge_response

_records: list[str] = []
def _call(user: FastHttpUser, name: str, feature: dict, keeper: Keeper) -> None:
    """One product request for ``feature`` (one of its inputs, at random), judged and recorded."""
    req = random.choice(feature["inputs"])
    answer = feature["expect"].get("field") or req.get("answer")
    started = time.time()
    t0 = time.perf_counter()
    kind = backend = data = None
    ok = deg = False
    status = size = 0
    try:
        with user.client.request(req["method"], req["path"], json=req.get("json"), headers=req.get("headers"),
                                 name=name, catch_response=True) as response:
            status = response.status_code or 0
            if status == 0:
                kind = "connection"
                response.failure(str(response.error)[:200])
            else:
                content = response.content or b""
                size = len(content)
                ok, deg, kind, backend, data = judge_response(feature, answer, status, content)
                if kind:
                    response.failure(kind)
                else:
                    response.success()
    except Exception as exc:
        kind = f"client_{type(exc).__name__}"
    ms = (time.perf_counter() - t0) * 1000
    record = {"t": started, "f": name, "ms": round(ms, 3), "ok": ok, "deg": deg, "s": status, "k": kind, "b": backend}
    if ok and req.get("case") is not None and keeper.take(name, started + ms / 1000, size):
        record.update(c=req["case"], a=data)
    _records.append(json.dumps(record))


def split_users(users: int, rates: dict[str, float]) -> dict[str, int]:
    """Users per feature in proportion to its rate, at least one each."""
    total = sum(rates.values())
    return {name: max(1, round(users * rate / total)) for name, rate in rates.items()}


def make_users(config: dict) -> list[type[FastHttpUser]]:
    """One user class picking features by weight; or, when features set a rate, one class per feature
    holding that rate (Locust's constant_throughput over that feature's share of the users)."""
    features = config["features"]
    keeper = Keeper({name: f.get("sample_slot") for name, f in features.items()}, config.get("max_body", MAX_BODY))

    class ProductUser(FastHttpUser):
        abstract = True
        host = config["base_url"]
        wait_time = constant(config["wait"])
        network_timeout = config.get("timeout", 60.0)
        connection_timeout = 10.0

    rates = {name: f["rate"] for name, f in features.items() if f.get("rate")}
    if not rates:
        names = list(features)
        weights = [features[n]["weight"] for n in names]

        class WeightedUser(ProductUser):
            @task
            def call(self) -> None:
                name = random.choices(names, weights)[0]
                _call(self, name, features[name], keeper)

        return [WeightedUser]
    classes = []
    for name, users in split_users(config["users"], rates).items():
        feature = features[name]

        class FeatureUser(ProductUser):
            fixed_count = users
            wait_time = constant_throughput(rates[name] / users)

            @task
            def call(self, name=name, feature=feature) -> None:
                _call(self, name, feature, keeper)

        FeatureUser.__name__ = f"User_{name}"
        classes.append(FeatureUser)
    return classes


def _flusher(path: Path) -> None:
    with path.open("a") as out:
        while True:
            gevent.sleep(0.2)
            _flush(out)


def _flush(out) -> None:
    if _records:
        lines, _records[:] = _records[:], []
        out.write("\n".join(lines) + "\n")
        out.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chaos.drill.loadgen")
    parser.add_argument("config")
    parser.add_argument("--role", choices=["local", "master", "worker"], default="local")
    args = parser.parse_args(argv)
    config = json.loads(Path(args.config).read_text())
    records = Path(config["records_dir"]) / f"records-{args.role}-{os.getpid()}.jsonl"
    user_classes = make_users(config)
    env = Environment(user_classes=user_classes, events=events)
    if args.role == "worker":
        runner = env.create_worker_runner(config["master_host"], config["master_port"])
    elif args.role == "master":
        runner = env.create_master_runner("127.0.0.1", config["master_port"])
    else:
        runner = env.create_local_runner()
    flusher = gevent.spawn(_flusher, records) if args.role != "master" else None
    gevent.signal_handler(signal.SIGTERM, runner.quit)
    if args.role != "worker":
        deadline = time.monotonic() + 30
        while args.role == "master" and len(runner.clients.ready) < config["workers"]:
            if time.monotonic() > deadline:
                print("loadgen: workers did not connect", file=sys.stderr)
                runner.quit()
                return 2
            gevent.sleep(0.05)
        users = sum(getattr(c, "fixed_count", 0) for c in user_classes) or config["users"]
        runner.start(users, spawn_rate=config["spawn_rate"])
        gevent.spawn_later(config["run_time"], runner.quit)
    runner.greenlet.join()
    if flusher is not None:
        flusher.kill()
        with records.open("a") as out:
            _flush(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
