"""Redaction before anything captured is stored: a planted secret of each kind never comes through."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from monitor.quality.redact import MAX_DEPTH, Redactor, luhn, parse_patterns

ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
DIGITS = "0123456789"


def _chars(alphabet: str, n: int, m: int | None = None) -> st.SearchStrategy[str]:
    return st.text(alphabet, min_size=n, max_size=m or n)


def _with_digit(s: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    # A real key is random base62: one of 20+ characters is a digit but for a 1 in 10^4 chance.
    return st.tuples(s, st.sampled_from(DIGITS), st.integers(0, 40)).map(lambda t: t[0][:t[2]] + t[1] + t[0][t[2]:])


def _card() -> st.SearchStrategy[str]:
    def make(body: str, sep: str) -> str:
        digits = body + next(d for d in DIGITS if luhn(body + d))
        return sep.join(digits[i:i + 4] for i in range(0, len(digits), 4))
    bodies = st.sampled_from(["4", "51", "37", "6011"]).flatmap(
        lambda prefix: _chars(DIGITS, 15 - len(prefix)).map(lambda rest: prefix + rest))
    return st.builds(make, bodies, st.sampled_from(["", " ", "-"]))


def _iban() -> st.SearchStrategy[str]:
    def make(country: str, bban: str, grouped: bool) -> str:
        check = 98 - int("".join(str(int(c, 36)) for c in bban + country + "00")) % 97
        compact = f"{country}{check:02d}{bban}"
        return " ".join(compact[i:i + 4] for i in range(0, len(compact), 4)) if grouped else compact
    return st.sampled_from([("GB", 18), ("DE", 18), ("FR", 23), ("NL", 14), ("ES", 20)]).flatmap(
        lambda c: st.builds(make, st.just(c[0]), _chars(DIGITS + "ABCDEFGHIJKLMNOPQRSTUVWXYZ", c[1]), st.booleans()))


def _phone() -> st.SearchStrategy[str]:
    d = lambda n: _chars(DIGITS, n)  # noqa: E731
    return st.one_of(
        st.builds(lambda a, b, c: f"+1 {a} {b} {c}", d(3), d(3), d(4)),
        st.builds(lambda a, b, c: f"({a}) {b}-{c}", d(3), d(3), d(4)),
        st.builds(lambda a, b, c: f"+44 {a} {b} {c}", d(2), d(4), d(4)),
        st.builds(lambda a: f"+49{a}", d(11)),
        st.builds(lambda a, b, c: f"{a}.{b}.{c}", d(3), d(3), d(4)),
    )


def _email() -> st.SearchStrategy[str]:
    label = _chars("abcdefghijklmnopqrstuvwxyz0123456789", 1, 12)
    local = st.lists(label, min_size=1, max_size=3).map(".".join)
    domain = st.lists(label, min_size=1, max_size=2).map(".".join)
    return st.builds(lambda lo, tag, dom, tld: f"{lo}{tag}@{dom}.{tld}", local, st.sampled_from(["", "+news"]),
                     domain, st.sampled_from(["com", "io", "co.uk", "de"]))


SECRETS = {
    "openai_key": st.builds(lambda p, body: p + body, st.sampled_from(["sk-", "sk-proj-", "sk-svcacct-"]),
                            _with_digit(_chars(ALNUM + "_-", 24, 60))),
    "anthropic_key": _chars(ALNUM + "_-", 40, 95).map(lambda body: "sk-ant-api03-" + body),
    "google_key": _chars(ALNUM + "_-", 35).map(lambda body: "AIza" + body),
    "bearer": st.builds(lambda word, tok: f"{word} {tok}", st.sampled_from(["Bearer", "bearer", "BEARER"]),
                        _chars(ALNUM + "._-", 20, 60)),
    "email": _email(),
    "phone": _phone(),
    "card": _card(),
    "iban": _iban(),
}


@pytest.mark.parametrize("kind", sorted(SECRETS))
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_a_planted_secret_never_comes_through(kind, data):
    secret = data.draw(SECRETS[kind], label="secret")
    before, after = data.draw(st.text(max_size=80), label="before"), data.draw(st.text(max_size=80), label="after")
    if kind in ("phone", "card", "iban"):
        # Numbers: a letter or digit glued on makes another number (still redacted, but as its own run);
        # the kinds of text a number sits in are drawn here instead.
        before += data.draw(st.sampled_from([" ", "\n", ": ", "(", "'", "number "]))
        after = data.draw(st.sampled_from([" ", ".", ",", "\n", ")", "'"])) + after
    core = secret.split(" ", 1)[1] if kind == "bearer" else secret
    assume(core not in before and core not in after)  # (the text around it is not the secret again)
    out = Redactor().text(before + secret + after)
    assert secret not in out
    assert core not in out


@pytest.mark.parametrize("kind", sorted(SECRETS))
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_each_kind_is_named_where_it_stands_alone(kind, data):
    secret = data.draw(SECRETS[kind])
    out = Redactor().text(f"here: {secret} (end)")
    assert out == f"here: [REDACTED:{kind}] (end)"


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_secrets_inside_a_request_body_never_come_through(data):
    secrets = [data.draw(SECRETS[k]) for k in ("openai_key", "email", "anthropic_key")]
    body = {"model": "gpt-4o-mini", "messages": [
        {"role": "system", "content": f"key {secrets[0]}"},
        {"role": "user", "content": [{"type": "text", "text": f"mail {secrets[1]} please"}]}],
        "metadata": {secrets[1]: secrets[2]}, "max_tokens": 64, "stream": True}
    out = Redactor().json(body)
    text = repr(out)
    assert all(s not in text for s in secrets)
    assert out["model"] == "gpt-4o-mini" and out["max_tokens"] == 64 and out["stream"] is True


@given(st.text(max_size=300))
def test_redaction_is_total_and_idempotent(text):
    r = Redactor()
    once = r.text(text)
    assert r.text(once) == once


def test_ordinary_text_is_kept():
    text = ("On 2024-01-15 the order of 3 items cost 129.99 EUR (12.5% off); ask the task-force-lead "
            "at the front desk, room 42, before 17:30.")
    assert Redactor().text(text) == text


def test_a_card_that_fails_luhn_is_still_a_redacted_number():
    assert Redactor().text("ref 4111 1111 1111 1112 ok") == "ref [REDACTED:number] ok"
    assert Redactor().text("ref 4111 1111 1111 1111 ok") == "ref [REDACTED:card] ok"


def test_an_iban_with_a_wrong_check_is_not_named_an_iban():
    assert "iban" not in Redactor().text("GB83 WEST 1234 5698 7654 32")
    assert Redactor().text("GB82 WEST 1234 5698 7654 32") == "[REDACTED:iban]"


def test_extra_patterns_run_first_and_bad_ones_are_named():
    r = Redactor([r"CUST-\d+", r"(?i)project\s+falcon"])
    assert r.text("customer CUST-42 on Project  Falcon") == "customer [REDACTED:custom] on [REDACTED:custom]"
    with pytest.raises(ValueError, match=r"redaction pattern 'a\(': not a regular expression"):
        Redactor(["a("])
    with pytest.raises(ValueError, match="matches the empty string"):
        Redactor(["x*"])


def test_pattern_files_skip_comments_and_blanks():
    assert parse_patterns("# ours\n\nCUST-\\d+\n  ACME-[A-Z]{3}  \n") == ["CUST-\\d+", "ACME-[A-Z]{3}"]


def test_json_deeper_than_a_request_is_refused():
    doc: object = "x"
    for _ in range(MAX_DEPTH + 1):
        doc = [doc]
    with pytest.raises(ValueError, match="nested deeper"):
        Redactor().json(doc)
