"""The lexer the rule and dashboard checks rest on: examples, and generated expressions whose
metric names are known, so a name hidden or invented by the lexer shows."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.deploy.promql_names import PromQLError, label_values_metric, metric_names


@pytest.mark.parametrize(("expr", "names"), [
    ("up", {"up"}),
    ('sum by (job) (rate(a_total{x="y",z=~"$v|w"}[5m] offset 1h30m)) / on (job) group_left (k) b > bool 1e3',
     {"a_total", "b"}),
    ('histogram_quantile(0.95, sum by (le) (rate(h_bucket{l="by (x)"}[$__rate_interval])))', {"h_bucket"}),
    ("absent(up{job=\"airisk\"}) or vector(0) unless c and d", {"up", "c", "d"}),
    ("rec:rule:rate5m{kind!~'a|b'} * 0x1F - Inf + NaN", {"rec:rule:rate5m"}),
    ("max_over_time(m[1h:5m]) @ start()", {"m"}),
    ("sum(x) without (instance)", {"x"}),
])
def test_examples(expr, names):
    assert metric_names(expr) == names


def test_a_name_selector_is_refused():
    with pytest.raises(PromQLError, match="__name__"):
        metric_names('{__name__=~"airisk_.*"}')


def test_label_values_query():
    assert label_values_metric('label_values(airisk_target_up{target=~"$target"}, region)') == \
        'airisk_target_up{target=~"$target"}'
    with pytest.raises(PromQLError, match="label_values"):
        label_values_metric("query_result(up)")


_IDENT = st.from_regex(r"[a-z_][a-z0-9_]{0,6}(:[a-z0-9_]{1,4})?", fullmatch=True)
NAMES = _IDENT.filter(lambda name: name not in {"and", "or", "unless", "bool", "offset", "by", "without", "on",
                                                "ignoring", "group_left", "group_right", "inf", "nan", "atan2"})
LABEL = st.from_regex(r"[a-z_][a-z0-9_]{0,6}", fullmatch=True)
VALUE = st.text(alphabet=st.characters(codec="ascii", exclude_characters='"\\'), max_size=12)
DURATION = st.sampled_from(["5m", "1h", "30s", "1h30m", "$__rate_interval", "${window}", "5m:1m"])


@st.composite
def selector(draw) -> tuple[str, set[str]]:
    name = draw(NAMES)
    matchers = draw(st.lists(st.tuples(LABEL, st.sampled_from(["=", "!=", "=~", "!~"]), VALUE), max_size=3))
    text = name + ("{" + ", ".join(f'{k}{op}"{v}"' for k, op, v in matchers) + "}" if matchers else "")
    if draw(st.booleans()):
        text = f"rate({text}[{draw(DURATION)}])"
    if draw(st.booleans()):
        text += f" offset {draw(st.sampled_from(['5m', '1d']))}"
    return text, {name}


def expression(depth: int = 3):
    leaf = selector() | st.tuples(st.sampled_from(["1", "0.95", "1e3", "0x1F", "Inf", "$budget"]), st.just(set()))
    if depth == 0:
        return leaf

    @st.composite
    def node(draw) -> tuple[str, set[str]]:
        kind = draw(st.sampled_from(["leaf", "agg", "bin", "func"]))
        if kind == "leaf":
            return draw(leaf)
        inner, names = draw(expression(depth - 1))
        if kind == "agg":
            op = draw(st.sampled_from(["sum", "max", "avg", "count"]))
            labels = ", ".join(draw(st.lists(LABEL, max_size=3)))
            clause = draw(st.sampled_from(["", f"by ({labels}) ", f"without ({labels}) "]))
            return (f"{op} {clause}({inner})" if draw(st.booleans()) else f"{op}({inner}) {clause}"), names
        if kind == "func":
            call = draw(st.sampled_from(["abs({})", "histogram_quantile(0.9, {})", "clamp_min({}, 0)",
                                         'label_replace({}, "dst", "$1", "src", "(.*)")']))
            return call.format(inner), names
        right, more = draw(expression(depth - 1))
        op = draw(st.sampled_from(["+", "/", "> bool", "and", "or", "unless", "=="]))
        labels = ", ".join(draw(st.lists(LABEL, max_size=2)))
        match = draw(st.sampled_from(["", f" on ({labels})", f" ignoring ({labels}) group_left ({labels})"]))
        return f"({inner}) {op}{match} ({right})", names | more

    return node()


@given(expression())
def test_generated_expressions_give_exactly_their_names(case):
    text, names = case
    assert metric_names(text) == names, text
