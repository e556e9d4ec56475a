"""How many pages does one outage cost the on-call engineer, seen from three regions, and how late?

Replays days of simulated time (bench/noise_timeline.py: three regions watching six targets of
OpenAI and Anthropic; global outages with the real incident durations and gaps of Chu et al.,
ICPE 2025; one region with its own network blips and regional outages; one region whose monitor
dies for an hour, a global outage starting inside that hour; 2% random failures) through the
REAL pipeline pieces, in virtual time:

- per region, per target, `monitor.detect.Detector`, fed `ProbeResult`s as `monitor.schedule`
  sends them: a base interval (60 s) at a random phase; confirmation probes when the detector
  asks (the latest request replacing a pending one, sent once no probe of the target is in
  flight); hedges past ``hedge_after`` without a first token; sibling probes of the same
  provider's other targets in the region when a scheduled probe fails (as `monitor.service`
  nudges them). A dead monitor sends nothing; on restart each detector starts from its open
  incident's state, as `monitor.service` does, and probes begin at a new phase.
- BASELINE (before issue 15): each region's transitions open its own incidents and go through
  its own `monitor.alerts.rules.Grouper` to `events_for`, one monitor, one page stream.
- QUORUM: the regions' current states, as `monitor.quorum.Sighting`s, go through
  `monitor.quorum.verdict` with the alive regions; a change of the global state is one global
  transition (one incident across regions) through one `Grouper` to `events_for`. Heartbeats:
  every monitor writes one every ``alerts.heartbeat_every`` (none while dead, at once on
  restart); at each survivor's heartbeat a region silent for over ``detection.heartbeat_timeout``
  is lost (it leaves ``alive``, and `monitor.vantage.events` gives the vantage_lost alert), and
  back at its first heartbeat. Run with ``quorum: 2`` (of 3) and ``quorum: 1`` on the same detector
  transitions, to price the quorum.

A page is a trigger alert (down or degraded) to the one channel of the default rules (down,
degraded, recovered; and vantage_lost for the quorum runs): what a receiver opens a new alert for.
Reminders are left out (both sides would have them), as are recoveries (they resolve, they do not
wake anyone) and updates (action ``update``: targets of a provider whose page is still open going
down later, sent under that page's dedup key, so the receiver adds them to the alert it has open). It goes out when
its group window closes (``alerts.group_window`` after its first transition), as the service's
Grouper releases it. A page is for a global outage when the evidence of one of its targets
(the detector's or, for a global transition, its regions' ``since`` to its ``at``) overlaps that
outage; else for a regional fault (a regional outage or a blip) likewise; else it is false.
Time to page: from an outage's first onset in any region to its first page.

Beside them, cross-region confirmation replayed on the same world (``--cross-region S``, default 1 s;
negative: skip): a failed scheduled probe in one region, and a DOWN there, has the other regions probe
that target S seconds later, as `probe_siblings` does within a region. The monitor does this since
171ef24 (``detection.cross_region_confirm``, on by default: a suspect row in the shared database, read
on the next housekeeping tick, at most 1 s later, hence the default S); and with it corroboration
(``--corroborate S``, default 0.25 s; ``detection.corroborate_after`` failures in a row here while another
region calls the target DOWN take it DOWN here S seconds later, `monitor.service`'s look at the sightings).
The main table is the monitor with both switched off, and shows what the quorum's delay is made of.

Figures are per run and deterministic for a seed; a month holds only 10-30 global outages, so
``--seeds`` pools several months for steadier percentiles. The world: bench/noise_timeline.py; the
monitors and the two pipelines: bench/noise_replay.py; here, the scoring and the report.

Usage: .venv/bin/python bench/alert_noise.py [--seed 1 | --seeds 1 2 3] [--days 30] [--cross-region 1]
                                              [--corroborate 0.25] [--corroborate-after 3] [--group-window 10]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.detection import pct  # noqa: E402
from bench.noise_replay import Baseline, Page, Pipeline, Quorum, replay, vantage  # noqa: E402
from bench.noise_timeline import DYING, FAULTY, REGIONS, TARGETS, Fault, Timeline, build  # noqa: E402
from monitor.config.alerts import AlertsConfig  # noqa: E402
from monitor.config.detection import DetectionConfig  # noqa: E402

# --- scoring -------------------------------------------------------------------------------------


@dataclass(slots=True)
class Score:
    label: str
    outages: int = 0
    pages_global: int = 0
    per_outage: Counter = field(default_factory=Counter)  # pages -> outages that got that many
    missed: int = 0
    ttp: list[float] = field(default_factory=list)  # seconds, outages paged
    by_mode: dict[str, list[int]] = field(default_factory=lambda: {"fast": [], "hang": []})  # pages per outage
    ttp_mode: dict[str, list[float]] = field(default_factory=lambda: {"fast": [], "hang": []})
    ttp_by: dict[tuple[int, int], float] = field(default_factory=dict)  # (seed, outage index) -> seconds
    second_onset: dict[tuple[int, int], float] = field(default_factory=dict)  # the 2nd region's onset - the 1st's
    regional_faults: int = 0
    pages_regional: int = 0
    regional_paged: int = 0  # regional faults with at least one page
    by_kind: Counter = field(default_factory=Counter)  # "regional"/"blip" -> faults; "regional paged"/... -> paged
    pages_false: int = 0
    vantage_pages: int = 0
    deaths: int = 0
    death_outage_paged: int = 0  # global outages starting while a monitor was dead, paged
    death_outages: int = 0

    def merge(self, other: Score) -> None:
        for name in ("outages", "pages_global", "missed", "regional_faults", "pages_regional", "regional_paged",
                     "pages_false", "vantage_pages", "deaths", "death_outage_paged", "death_outages"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.per_outage.update(other.per_outage)
        self.by_kind.update(other.by_kind)
        self.ttp += other.ttp
        for mode in self.by_mode:
            self.by_mode[mode] += other.by_mode[mode]
            self.ttp_mode[mode] += other.ttp_mode[mode]
        self.ttp_by.update(other.ttp_by)
        self.second_onset.update(other.second_onset)


def attribute(world: Timeline, page: Page) -> tuple[str, Fault | None]:
    """What a page was about: ("global", outage), ("regional", fault) or ("false", None)."""
    found: list[Fault] = []
    for target, region, since, at in page.evidence:
        for r in (region,) if region else REGIONS:
            found += world.faults_overlapping(r, target, since, at)
    for kind in ("global", "regional", "blip"):
        hits = sorted((f for f in found if f.kind == kind), key=lambda f: f.start)
        if hits:
            return ("global" if kind == "global" else "regional"), hits[0]
    return "false", None


def score(world: Timeline, pipeline: Pipeline) -> Score:
    s = Score(pipeline.label)
    outages = world.of_kind("global")
    regional = [f for f in world.faults if f.kind != "global"]
    pages: dict[int, list[float]] = {id(o): [] for o in outages}
    regional_hit: set[int] = set()
    for page in pipeline.pages:
        kind, fault = attribute(world, page)
        if kind == "global":
            s.pages_global += 1
            pages[id(fault)].append(page.sent)
        elif kind == "regional":
            s.pages_regional += 1
            regional_hit.add(id(fault))
        else:
            s.pages_false += 1
    s.outages, s.regional_faults, s.regional_paged = len(outages), len(regional), len(regional_hit)
    for f in regional:
        s.by_kind[f.kind] += 1
        s.by_kind[f"{f.kind} paged"] += id(f) in regional_hit
    death = world.death
    for i, o in enumerate(outages):
        sent = pages[id(o)]
        s.per_outage[len(sent)] += 1
        mode = "hang" if o.hang else "fast"
        s.by_mode[mode].append(len(sent))
        s.second_onset[(world.seed, i)] = sorted(a for _, a, _ in o.windows)[1] - o.start
        during = death is not None and death.start <= o.start < death.end
        s.death_outages += during
        if sent:
            ttp = min(sent) - o.start
            s.ttp.append(ttp)
            s.ttp_mode[mode].append(ttp)
            s.ttp_by[(world.seed, i)] = ttp
            s.death_outage_paged += during
        else:
            s.missed += 1
    s.vantage_pages = len(pipeline.vantage_pages)
    s.deaths = death is not None
    return s


# --- report --------------------------------------------------------------------------------------


def _f(v: float, digits: int) -> str:
    return "-" if math.isnan(v) else f"{v:.{digits}f}"


def _ratio(a: float, b: float) -> str:
    if math.isnan(a) or math.isnan(b):
        return "-"
    if b == 0:
        return "-" if a == 0 else "inf"
    return f"{a / b:.2f}x"


def _spread(s: Score) -> str:
    """Outages that got 0 / 1 / 2 / 3 or more pages."""
    return "/".join(str(s.per_outage[k]) for k in (0, 1, 2)) + f"/{sum(v for k, v in s.per_outage.items() if k >= 3)}"


def _mode(s: Score, mode: str) -> str:
    pages = s.by_mode[mode]
    return f"{len(pages)}/{sum(pages) / len(pages):.2f}" if pages else "0/-"


def _pair(values: list[float]) -> str:
    return f"{pct(values, 50):.0f}/{pct(values, 95):.0f}" if values else "-"


ROWS: list[tuple[str, object, str, int, bool]] = [  # label, figure of a Score, goal, digits, ratio shown
    ("global outages", lambda s: s.outages, "", 0, False),
    ("pages per global outage", lambda s: s.pages_global / s.outages if s.outages else math.nan, "exactly 1.0", 2,
     True),
    ("  outages with 0/1/2/3+ pages", _spread, "", 0, False),
    ("  fast-failing: outages/pages per outage", lambda s: _mode(s, "fast"), "n/1.00", 0, False),
    ("  hanging (20 s deadline): the same", lambda s: _mode(s, "hang"), "n/1.00", 0, False),
    ("global outages never paged", lambda s: s.missed, "0", 0, False),
    ("regional-only faults (outages + blips)", lambda s: s.regional_faults, "", 0, False),
    ("pages for regional-only faults", lambda s: s.pages_regional, "0", 0, True),
    ("  regional outages paged", lambda s: f"{s.by_kind['regional paged']}/{s.by_kind['regional']}", "", 0, False),
    ("  blips paged", lambda s: f"{s.by_kind['blip paged']}/{s.by_kind['blip']}", "", 0, False),
    ("false pages (no fault in truth)", lambda s: s.pages_false, "0", 0, True),
    ("time to page, median (s)", lambda s: pct(s.ttp, 50), "", 1, True),
    ("time to page, p95 (s)", lambda s: pct(s.ttp, 95), "", 1, True),
    ("  fast-failing: median/p95 (s)", lambda s: _pair(s.ttp_mode["fast"]), "", 0, False),
    ("  hanging: median/p95 (s)", lambda s: _pair(s.ttp_mode["hang"]), "", 0, False),
    ("outages starting while a monitor is dead", lambda s: s.death_outages, "", 0, False),
    ("  of them paged", lambda s: s.death_outage_paged, "all", 0, False),
    ("vantage_lost pages per monitor death", lambda s: s.vantage_pages / s.deaths if s.deaths else math.nan,
     "exactly 1", 2, False),
]


def table(columns: list[tuple[str, Score]], ratio: tuple[int, int] | None = None) -> list[str]:
    """The figures side by side; ``ratio`` (a, b): a column of a's figure over b's, after b."""
    head = f"{'':<42}" + "".join(f"{name:>12}" for name, _ in columns)
    where = None
    if ratio is not None:
        where = ratio[1] + 1
        cells = [f"{name:>12}" for name, _ in columns]
        cells.insert(where, f"{'ratio':>12}")
        head = f"{'':<42}" + "".join(cells)
    lines = [head + "   goal"]
    for label, get, goal, digits, show_ratio in ROWS:
        values = [get(s) for _, s in columns]
        cells = [f"{v:>12}" if isinstance(v, str) else f"{_f(float(v), digits):>12}" for v in values]
        if where is not None:
            a, b = values[ratio[0]], values[ratio[1]]
            cells.insert(where, f"{_ratio(float(a), float(b)) if show_ratio else '':>12}")
        lines.append(f"{label:<42}" + "".join(cells) + (f"   {goal}" if goal else ""))
    return lines


def quorum_cost(two: Score, one: Score, step: float) -> list[str]:
    """Time to page with quorum 2 minus with quorum 1, outage by outage (those both paged)."""
    both = sorted(set(two.ttp_by) & set(one.ttp_by))
    if not both:
        return ["  no outage paged by both"]
    diff = [two.ttp_by[k] - one.ttp_by[k] for k in both]
    med, p95 = pct(diff, 50), pct(diff, 95)
    a, b = [one.ttp_by[k] for k in both], [two.ttp_by[k] for k in both]
    floor = [two.second_onset[k] for k in both]
    return [
        f"  outages paged by both: {len(both)}; time to page, quorum 1: median {pct(a, 50):.1f} s, p95 "
        f"{pct(a, 95):.1f} s; quorum 2: median {pct(b, 50):.1f} s, p95 {pct(b, 95):.1f} s",
        f"  quorum 2 later by: median {med:+.1f} s = {med / step:.2f} confirmation steps, p95 {p95:+.1f} s = "
        f"{p95 / step:.2f} steps (step {step:g} s, confirm_after's first; goal under 1 step at the median: "
        f"{'met' if med < step else 'NOT met'})",
        f"  (a bound no quorum of 2 can beat: the outage reaches the second region {pct(floor, 50):.1f} s after the "
        f"first at the median, p95 {pct(floor, 95):.1f} s)",
    ]


def show(columns: list[tuple[str, Score]], q2: Score, q1: Score, step: float, *,
         ratio: tuple[int, int] | None = None, heading: str | None = None) -> None:
    """One block of the report: the figures side by side, then the quorum's cost (``q2`` against ``q1``)."""
    for line in table(columns, ratio=ratio):
        print("  " + line)
    if heading:
        print(f"  {heading}")
    for line in quorum_cost(q2, q1, step):
        print("  " + line)


def _corroboration(lag: float | None, detection: DetectionConfig) -> str:
    if lag is None or detection.corroborate_after is None:
        return ", no corroboration"
    return (f", with corroboration ({detection.corroborate_after} failures in a row while another region is DOWN, "
            f"{lag:g} s)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, help="run this one seed (default 1)")
    ap.add_argument("--seeds", type=int, nargs="+", help="pool these seeds (one simulated month each by default)")
    ap.add_argument("--days", type=float, default=30.0, help="simulated days a seed (default 30)")
    ap.add_argument("--cross-region", type=float, default=1.0, metavar="S",
                    help="also replay cross-region confirmation (the monitor's default): a failed scheduled probe "
                         "in one region has the other regions probe that target S seconds later (default 1, the "
                         "housekeeping tick; negative: skip it)")
    ap.add_argument("--group-window", type=float, metavar="S",
                    help="alerts.group_window for every pipeline (default: the config's, 10 s)")
    ap.add_argument("--corroborate", type=float, default=0.25, metavar="S",
                    help="with cross-region confirmation, also replay corroboration (the monitor's default, "
                         "detection.corroborate_after): a region failing that many probes in a row goes DOWN S "
                         "seconds after it and another region's DOWN are both there (default 0.25, the monitor's "
                         "look; negative: off, as before it)")
    ap.add_argument("--corroborate-after", type=int, metavar="N",
                    help="detection.corroborate_after for the replay (default: the config's)")
    args = ap.parse_args(argv)
    if not args.days > 0:
        ap.error(f"--days: must be above 0, got {args.days:g}")
    if args.group_window is not None and not args.group_window >= 0:
        ap.error(f"--group-window: must be 0 or more seconds, got {args.group_window:g}")
    window = args.group_window
    seeds = args.seeds or [1 if args.seed is None else args.seed]
    proposal = args.cross_region if args.cross_region >= 0 else None
    corroborate = args.corroborate if args.corroborate >= 0 else None
    detection = DetectionConfig(quorum=2, **({} if args.corroborate_after is None
                                             else {"corroborate_after": args.corroborate_after}))
    alerts = AlertsConfig() if window is None else AlertsConfig(group_window=window)
    step = detection.confirm_after[0] if detection.confirm_after else math.nan
    began = time.perf_counter()
    print(f"{len(REGIONS)} regions ({', '.join(REGIONS)}) x {len(TARGETS)} targets ({', '.join(TARGETS)});")
    print(f"{args.days:g} simulated days a seed; {FAULTY} has its own blips and regional outages, {DYING}'s "
          "monitor dies for an hour;")
    print(f"detection defaults (failure_threshold {detection.failure_threshold}, confirm_after "
          f"{'/'.join(f'{c:g}' for c in detection.confirm_after)} s, probe_siblings, heartbeat_timeout "
          f"{detection.heartbeat_timeout:g} s); alerts: group_window {alerts.group_window:g} s, heartbeat_every "
          f"{alerts.heartbeat_every:g} s; rules down/degraded/recovered (+ vantage_lost) to one channel")
    print(f"vantage_lost alert: {'monitor.vantage.events' if vantage is not None else 'counted by the bench'}")
    names = ("baseline", "quorum 2", "quorum 1")
    totals = {name: Score(name) for name in (*names, "q2 + cross", "q1 + cross")}
    for seed in seeds:
        world = build(seed, days=args.days)
        pipelines: list[Pipeline] = [Baseline(group_window=window), Quorum(2, detection, group_window=window),
                                     Quorum(1, detection, group_window=window)]
        run = replay(world, detection, pipelines, heartbeat_every=alerts.heartbeat_every)
        kinds = Counter(f.kind for f in world.faults)
        d = world.death
        cover = (f"an outage of {d.covers.provider} starts {(d.covers.start - d.start) / 60:.0f} min into it"
                 if d.covers else "no outage inside it")
        print(f"\nseed {seed}: {kinds['global']} global outages; in {FAULTY} {kinds['regional']} regional outages and "
              f"{kinds['blip']} blips; {DYING} dead from {d.start / 3600:.1f} h to {d.end / 3600:.1f} h ({cover});")
        print(f"  {run.probes:,} probes, {run.transitions} state changes, {run.wall:.0f} s")
        scores = dict(zip(names, (score(world, p) for p in pipelines), strict=True))
        print(f"  ratio: {names[1]} / {names[0]}")
        show([(n, scores[n]) for n in names], scores["quorum 2"], scores["quorum 1"], step, ratio=(1, 0),
             heading="the cost of the quorum:")
        for name, s in scores.items():
            totals[name].merge(s)
        if proposal is None:
            continue
        pipelines = [Quorum(2, detection, group_window=window), Quorum(1, detection, group_window=window)]
        tried = replay(world, detection, pipelines, heartbeat_every=alerts.heartbeat_every, cross_region=proposal,
                       corroborate=corroborate)
        what_if = dict(zip(("q2 + cross", "q1 + cross"), (score(world, p) for p in pipelines), strict=True))
        print(f"  cross-region confirmation, the monitor's default (a failed scheduled probe, and a DOWN, in one "
              f"region has the others probe the target {proposal:g} s later){_corroboration(corroborate, detection)}:")
        print(f"  {tried.probes:,} probes ({tried.probes / run.probes - 1:+.1%}), {tried.wall:.0f} s")
        show([("quorum 2", scores["quorum 2"]), *what_if.items()], what_if["q2 + cross"], what_if["q1 + cross"], step)
        for name, s in what_if.items():
            totals[name].merge(s)
    if len(seeds) > 1:
        print(f"\nall seeds ({' '.join(map(str, seeds))}):")
        show([(n, totals[n]) for n in names], totals["quorum 2"], totals["quorum 1"], step, ratio=(1, 0),
             heading="the cost of the quorum:")
        if proposal is not None:
            print(f"  cross-region confirmation, the monitor's default ({proposal:g} s)"
                  f"{_corroboration(corroborate, detection)}:")
            show([(n, totals[n]) for n in ("quorum 2", "q2 + cross", "q1 + cross")], totals["q2 + cross"],
                 totals["q1 + cross"], step)
    print(f"\n({time.perf_counter() - began:.0f} s wall)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
