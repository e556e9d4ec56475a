"""`dashboard.ui.PAGE_QUERIES`: every page query the views load is written out there, and each entry
calls its own query with what it declares (no signature read at run time)."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from typing import Any

import pytest

import dashboard
from dashboard import queries, ui

VIEWS = Path(dashboard.__file__).parent / "views"


def _loaded() -> set[str]:
    """The names of `dashboard.queries` the views pass to `ui.load`."""
    names = set()
    for path in VIEWS.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load"
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "ui"):
                first = node.args[0]
                assert isinstance(first, ast.Attribute) and isinstance(first.value, ast.Name), ast.unparse(node)
                assert first.value.id == "queries", ast.unparse(node)
                names.add(first.attr)
    return names


def test_every_loaded_query_is_listed_and_every_listed_one_is_loaded() -> None:
    assert _loaded() == set(ui.PAGE_QUERIES)


@pytest.mark.parametrize("name", sorted(ui.PAGE_QUERIES))
def test_each_entry_calls_its_query_with_what_it_declares(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fn = getattr(queries, name)
    params = inspect.signature(fn).parameters
    given = ui.Given(session=object(), now=object(), window=object(), config=object())  # type: ignore[arg-type]
    from_given = {"session", "now", "window", "config"}
    own = {p: f"{p}-value" for p, v in params.items() if p not in from_given and v.default is inspect.Parameter.empty}
    seen: dict[str, Any] = {}
    monkeypatch.setattr(queries, name, lambda **kwargs: seen.update(kwargs) or "answer")
    assert ui.PAGE_QUERIES[name](given, **own) == "answer"
    # The context arguments it declares come from `Given`, the page's own as given; nothing else.
    assert seen == {**{p: getattr(given, p) for p in params if p in from_given}, **own}


def test_load_refuses_a_function_that_is_not_a_page_query() -> None:
    with pytest.raises(KeyError, match="not a page query"):
        ui.load(queries.what_if_choices, None)  # type: ignore[arg-type]
