"""References written into an eval file in place: only the ``reference`` member changes, every other byte of
every line stays, and the file still reads as the same cases."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.quality.cases import parse_cases
from monitor.quality.reference import LineError, line_number, set_reference, with_references, write_atomically

CASE = {"id": "c1", "messages": [{"role": "user", "content": "Hi"}], "checks": [{"type": "length", "min_chars": 1}]}


def _only_inserted(before: str, after: str) -> bool:
    """``after`` is ``before`` with something put in at one place, nothing else changed."""
    head = _common(before, after)
    tail = _common(before[head:][::-1], after[head:][::-1])
    return head + tail == len(before)


def _common(a: str, b: str) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


@pytest.mark.parametrize(("line", "expected"), [
    ('{"id": "a", "checks": [1]}', '{"id": "a", "checks": [1], "reference": "R"}'),
    ('{"id":"a","checks":[1]}', '{"id":"a","checks":[1],"reference":"R"}'),
    ('  {"id" : "a" ,  "n": 1 }\r', '  {"id" : "a" ,  "n": 1 ,  "reference" : "R" }\r'),
    ('{"id": "a"}', '{"id": "a", "reference": "R"}'),
    ('{"reference": "old", "id": "a"}', '{"reference": "R", "id": "a"}'),
    ('{"id": "a", "reference": null}', '{"id": "a", "reference": "R"}'),
    ('{"\\u0072eference": "old"}', '{"\\u0072eference": "R"}'),  # the key as json reads it
])
def test_the_reference_is_added_or_replaced_in_the_lines_own_spacing(line, expected):
    assert set_reference(line, "R") == expected


def test_lines_that_are_not_one_object_are_refused():
    for bad in ("[1]", '{"a": 1', '{"a" 1}', '{"a": 1} x', '{1: 2}'):
        with pytest.raises(LineError):
            set_reference(bad, "R")


_keys = st.text(min_size=1, max_size=8).filter(lambda k: k != "reference")
_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                       lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                   max_size=3), max_leaves=8)


@given(obj=st.dictionaries(_keys, _values, min_size=1, max_size=5), text=st.text(min_size=1),
       item=st.sampled_from([",", ", ", " , "]), key=st.sampled_from([":", ": ", " :  "]),
       ascii_only=st.booleans(), old=st.none() | st.text(max_size=20))
def test_only_the_reference_changes(obj, text, item, key, ascii_only, old):
    if old is not None:
        obj = {**obj, "reference": old}
    line = json.dumps(obj, separators=(item, key), ensure_ascii=ascii_only)
    after = set_reference(line, text)
    assert json.loads(after) == {**obj, "reference": text}
    if old is None:
        assert _only_inserted(line, after)
    else:  # the old value's bytes replaced, all before and after it kept
        old_json = json.dumps(old, ensure_ascii=ascii_only)
        start = line.rindex(old_json)
        assert after == line[:start] + json.dumps(text, ensure_ascii=False) + line[start + len(old_json):]
    assert "\n" not in after  # still one line


def test_a_file_gets_references_on_the_lines_named_and_keeps_every_other_byte(tmp_path):
    lines = [json.dumps({**CASE, "id": f"c{i}"}) for i in range(4)]
    raw = ("\n".join(lines[:2]) + "\n\n" + lines[2] + "\r\n" + lines[3]).encode()  # a blank line, a CRLF, no last \n
    out = with_references(raw, {1: "first", 5: "fourth\nline"})
    got = out.split(b"\n")
    assert got[1:4] == raw.split(b"\n")[1:4]
    cases = {c.id: c for c in parse_cases(out)}
    assert (cases["c0"].reference, cases["c1"].reference, cases["c3"].reference) == ("first", None, "fourth\nline")
    assert line_number(cases["c3"].source) == 5


def test_a_file_is_replaced_atomically_and_its_old_bytes_kept(tmp_path):
    path = tmp_path / "chat.jsonl"
    path.write_bytes(b"old\n")
    path.chmod(0o640)
    write_atomically(path, b"new\n", backup=True)
    assert path.read_bytes() == b"new\n" and (tmp_path / "chat.jsonl.bak").read_bytes() == b"old\n"
    assert path.stat().st_mode & 0o777 == 0o640
    write_atomically(tmp_path / "other.jsonl", b"x", backup=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chat.jsonl", "chat.jsonl.bak", "other.jsonl"]
