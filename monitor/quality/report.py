"""What `airisk eval run` prints: per feature and backend, the pass rate with its 95% interval, errors
apart, latency against the feature's budget, tokens and cost; as a terminal table, JSON lines, or JUnit.

`Line` joins a `QualityFigure` with what the config asks of the feature (its latency budget and
``min_quality``); every output is a view of lines, so the three always agree.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.table import Table

    from monitor.config.features import FeatureConfig
    from monitor.quality.figures import QualityFigure

FAILURES_LISTED = 20  # failed cases named in a JUnit failure; the rest are counted
REASON_LISTED = 200
# What XML 1.0 cannot hold (control characters, lone surrogates, U+FFFE/FFFF): an answer quoted in a
# failure must not make the report unreadable for the CI that parses it.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass(frozen=True, slots=True)
class Line:
    """One backend's figures for one feature, with the feature's terms."""

    figure: QualityFigure
    first_token_budget_ms: float | None = None
    total_budget_ms: float | None = None
    min_quality: float | None = None
    failures: tuple[tuple[str, str], ...] = ()
    """(case id, what failed) of each quality failure."""

    @property
    def ttft_over(self) -> bool | None:
        """p95 time to first token over the budget (None: no budget or no answer to time)."""
        return _over(self.figure.ttft_p95_ms, self.first_token_budget_ms)

    @property
    def total_over(self) -> bool | None:
        return _over(self.figure.total_p95_ms, self.total_budget_ms)

    @property
    def meets(self) -> bool | None:
        """The interval's lower bound reaches ``min_quality`` (None when the feature sets none)."""
        return None if self.min_quality is None else self.figure.lower >= self.min_quality

    def to_dict(self) -> dict[str, Any]:
        f = self.figure
        lo, hi = f.interval
        return {
            "feature": f.feature, "backend": f.backend, "run_id": f.run_id, "at": f.at.isoformat(), "local": f.local,
            "cases": f.cases, "judged": f.judged, "passed": f.passed, "failed": f.failed, "unjudged": f.unjudged,
            "errors": dict(sorted(f.errors.items())), "error_count": f.error_count,
            "pass_rate": f.pass_rate, "interval": [lo, hi], "lower": lo, "min_quality": self.min_quality,
            "meets_min_quality": self.meets,
            "ttft_p50_ms": f.ttft_p50_ms, "ttft_p95_ms": f.ttft_p95_ms, "total_p50_ms": f.total_p50_ms,
            "total_p95_ms": f.total_p95_ms, "first_token_budget_ms": self.first_token_budget_ms,
            "total_budget_ms": self.total_budget_ms, "ttft_over_budget": self.ttft_over,
            "total_over_budget": self.total_over,
            "input_tokens": f.input_tokens, "output_tokens": f.output_tokens, "cost_usd": f.cost_usd,
            "cost_per_1000_usd": f.cost_per_1000,
            "failures": [{"case": case, "reason": reason} for case, reason in self.failures],
        }


def lines(figures: Iterable[QualityFigure], features: Mapping[str, FeatureConfig],
          failures: Mapping[tuple[str, str], Sequence[tuple[str, str]]] | None = None) -> list[Line]:
    """A `Line` per figure, in the order given, with each feature's budget and ``min_quality``."""
    out = []
    for f in figures:
        spec = features.get(f.feature)
        budget = spec.latency_budget if spec is not None else None
        out.append(Line(
            figure=f,
            first_token_budget_ms=_ms(budget.first_token if budget else None),
            total_budget_ms=_ms(budget.total if budget else None),
            min_quality=spec.min_quality if spec is not None else None,
            failures=tuple((failures or {}).get((f.feature, f.backend), ())),
        ))
    return out


def unmet(report: Iterable[Line]) -> list[str]:
    """One sentence per backend whose pass rate's lower bound is under its feature's ``min_quality``."""
    return [f"{line.figure.feature} on {line.figure.backend}: pass rate {pass_rate(line.figure)}, lower bound "
            f"{line.figure.lower:.0%} under min_quality {line.min_quality:.0%}"
            for line in report if line.meets is False]


# -- text --------------------------------------------------------------------------------------------------

def pass_rate(f: QualityFigure) -> str:
    """``83% [71-91%] of 30`` (of the judged cases), or why there is none."""
    if not f.judged:
        return "nothing judged"
    lo, hi = f.interval
    return f"{f.passed / f.judged:.0%} [{lo * 100:.0f}-{hi * 100:.0f}%] of {f.judged}"


def errors_text(f: QualityFigure) -> str:
    return ", ".join(f"{n} {kind}" for kind, n in sorted(f.errors.items(), key=lambda kv: (-kv[1], kv[0]))) or "-"


def _latency(p50: float | None, p95: float | None, budget: float | None, over: bool | None) -> str:
    if p50 is None or p95 is None:
        return "-"
    text = f"{_num_ms(p50)} / {_num_ms(p95)}"
    if budget is not None:
        text += f" (budget {_num_ms(budget)}{', OVER' if over else ''})"
    return text


def _num_ms(ms: float) -> str:
    return f"{ms / 1000:.2f}s" if ms >= 1000 else f"{ms:.0f}ms"


def _cost(usd: float | None) -> str:
    if usd is None:
        return "unpriced"
    if usd == 0:
        return "$0"
    if usd < 0.0001:  # a few tokens of a cheap model: still not free, and never shown as $0.0000
        return "<$0.0001"
    return f"${usd:.4f}" if usd < 1 else f"${usd:,.2f}"


def table(report: Sequence[Line]) -> Table:
    """The terminal view: one row per feature and backend."""
    from rich.table import Table

    t = Table(title="answer quality (pass rate: 95% Wilson interval of the judged cases)", title_justify="left")
    for name, justify in (("feature", "left"), ("backend", "left"), ("pass rate", "left"), ("unjudged", "right"),
                          ("errors", "left"), ("TTFT p50/p95", "left"), ("total p50/p95", "left"),
                          ("tokens in/out", "right"), ("cost", "right"), ("per 1k", "right")):
        t.add_column(name, justify=justify)  # type: ignore[arg-type]
    for line in report:
        f = line.figure
        rate = pass_rate(f)
        if line.meets is not None:  # judged by the lower bound, so the minimum is shown beside the interval
            rate = f"[{'green' if line.meets else 'red'}]{rate} (min {line.min_quality:.0%})[/]"
        ttft = _latency(f.ttft_p50_ms, f.ttft_p95_ms, line.first_token_budget_ms, line.ttft_over)
        total = _latency(f.total_p50_ms, f.total_p95_ms, line.total_budget_ms, line.total_over)
        t.add_row(
            f.feature, f.backend + (" (owned)" if f.local else ""), rate, str(f.unjudged),
            f"[yellow]{errors_text(f)}[/]" if f.errors else "-",
            f"[red]{ttft}[/]" if line.ttft_over else ttft, f"[red]{total}[/]" if line.total_over else total,
            f"{f.input_tokens:,} / {f.output_tokens:,}", _cost(f.cost_usd), _cost(f.cost_per_1000),
        )
    return t


def json_lines(report: Iterable[Line]) -> str:
    """One JSON object per feature and backend, a line each."""
    return "".join(json.dumps(line.to_dict(), sort_keys=True) + "\n" for line in report)


# -- JUnit --------------------------------------------------------------------------------------------------

def write_junit(report: Sequence[Line], path: Path) -> None:
    """A test suite per feature, a test case per backend: failing when the pass rate's lower bound is under
    the feature's ``min_quality`` (set); the figures as properties; the failed cases in the failure text."""
    root = ET.Element("testsuites", name="airisk eval")
    by_feature: dict[str, list[Line]] = {}
    for line in report:
        by_feature.setdefault(line.figure.feature, []).append(line)
    for feature, feature_lines in by_feature.items():
        failing = sum(line.meets is False for line in feature_lines)
        suite = ET.SubElement(root, "testsuite", name=_xml(f"airisk eval {feature}"), tests=str(len(feature_lines)),
                              failures=str(failing), errors="0")
        for line in feature_lines:
            f = line.figure
            case = ET.SubElement(suite, "testcase", classname=_xml(f"airisk.eval.{feature}"), name=_xml(f.backend))
            props = ET.SubElement(case, "properties")
            for key, value in line.to_dict().items():
                if key != "failures":
                    ET.SubElement(props, "property", name=key,
                              value=_xml(value if isinstance(value, str) else json.dumps(value, sort_keys=True)))
            if line.meets is False:
                message = unmet([line])[0]
                ET.SubElement(case, "failure", message=_xml(message), type="below_min_quality").text = _xml(
                    _failure_text(line))
            ET.SubElement(case, "system-out").text = (
                f"pass rate {pass_rate(f)}; unjudged {f.unjudged}; errors {errors_text(f)}")
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def _failure_text(line: Line) -> str:
    out = [unmet([line])[0]]
    if line.failures:
        out.append(f"failed cases ({len(line.failures)}):")
        out += [f"  {case}: {reason[:REASON_LISTED]}" for case, reason in line.failures[:FAILURES_LISTED]]
        if len(line.failures) > FAILURES_LISTED:
            out.append(f"  ... and {len(line.failures) - FAILURES_LISTED} more")
    if line.figure.errors:
        out.append(f"not answered (errors, not counted as failures): {errors_text(line.figure)}")
    return "\n".join(out)


def _xml(text: str) -> str:
    return _NOT_XML.sub("?", text)


def _over(value: float | None, budget: float | None) -> bool | None:
    return None if value is None or budget is None else value > budget


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000
