"""`Conversation`: what a feature asks, validated when made, and read from an eval case."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.quality.cases import parse_cases
from probes import Conversation, Target

ASK = (("user", "What is 2 plus 2?"),)


def test_a_plain_question_is_a_conversation_with_the_provider_defaults():
    c = Conversation(messages=ASK)
    assert (c.system, c.max_tokens, c.temperature, c.top_p, c.stop) == (None, None, None, None, ())
    assert c.prompt == "What is 2 plus 2?"
    assert c.max_tokens_for(Target.from_provider("openai", max_tokens=33)) == 33
    assert Conversation(messages=ASK, max_tokens=7).max_tokens_for(Target.from_provider("openai")) == 7


def test_lists_are_kept_as_tuples_so_a_conversation_is_hashable_and_fixed():
    c = Conversation(messages=[["user", "a"], ("assistant", "b"), ["user", "c"]], stop=["END"])
    assert c.messages == (("user", "a"), ("assistant", "b"), ("user", "c"))
    assert c.stop == ("END",)
    assert hash(c) == hash(Conversation(messages=(("user", "a"), ("assistant", "b"), ("user", "c")), stop=("END",)))


@pytest.mark.parametrize(("fields", "problem"), [
    ({"messages": ()}, "messages: at least one message is needed"),
    ({"messages": (("user", "a"), ("assistant", "b"))}, "messages: the last message must be the user's"),
    ({"messages": (("system", "be brief"), ("user", "a"))}, "messages[0]: role must be 'user' or 'assistant'"),
    ({"messages": (("user", ""),)}, "messages[0]: content must be non-empty text"),
    ({"messages": (("user", 5),)}, "messages[0]: content must be non-empty text"),
    ({"messages": ("user",)}, "messages[0]: must be a (role, content) pair"),
    ({"system": ""}, "system: must be non-empty text"),
    ({"max_tokens": 0}, "max_tokens: must be a whole number of at least 1"),
    ({"max_tokens": True}, "max_tokens: must be a whole number of at least 1"),
    ({"max_tokens": 2.0}, "max_tokens: must be a whole number of at least 1"),
    ({"temperature": -0.1}, "temperature: must be a finite number from 0 to 2"),
    ({"temperature": 2.5}, "temperature: must be a finite number from 0 to 2"),
    ({"temperature": math.nan}, "temperature: must be a finite number from 0 to 2"),
    ({"temperature": math.inf}, "temperature: must be a finite number from 0 to 2"),
    ({"top_p": 0}, "top_p: must be a number above 0 and at most 1"),
    ({"top_p": 1.01}, "top_p: must be a number above 0 and at most 1"),
    ({"top_p": math.nan}, "top_p: must be a number above 0 and at most 1"),
    ({"stop": ("",)}, "stop: must be a tuple of non-empty strings"),
    ({"stop": "END"}, "stop: must be a tuple of non-empty strings"),
])
def test_a_bad_conversation_says_what_is_wrong(fields, problem):
    with pytest.raises(ValueError) as raised:
        Conversation(**{"messages": ASK, **fields})
    assert str(raised.value).startswith(problem)


def test_the_edges_of_each_range_are_allowed():
    c = Conversation(messages=ASK, temperature=2, top_p=1, max_tokens=1)
    assert (c.temperature, c.top_p, c.max_tokens) == (2, 1, 1)
    assert Conversation(messages=ASK, temperature=0, top_p=1e-9).temperature == 0


def test_as_text_sends_one_question_as_it_is_and_a_longer_conversation_as_a_transcript():
    assert Conversation(messages=ASK).as_text() == "What is 2 plus 2?"
    assert Conversation(messages=ASK, system="Answer briefly.").as_text() == "Answer briefly.\n\nWhat is 2 plus 2?"
    longer = Conversation(messages=(("user", "Hi"), ("assistant", "Hello!"), ("user", "2+2?")), system="Be brief.")
    assert longer.as_text() == "Be brief.\n\nUser: Hi\n\nAssistant: Hello!\n\nUser: 2+2?\n\nAssistant:"


def test_from_case_reads_an_eval_case_as_the_loader_makes_it():
    line = ('{"id": "c1", "system": "You sell shoes.", "messages": [{"role": "system", "content": "Be kind."}, '
            '{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}, '
            '{"role": "user", "content": "Do you ship to Oslo?"}], '
            '"params": {"max_tokens": 80, "temperature": 0.2, "top_p": 0.9, "stop": ["###"]}, '
            '"checks": [{"type": "contains", "value": "Oslo"}]}')
    (case,) = parse_cases(line)
    c = Conversation.from_case(case)
    assert c == Conversation(messages=(("user", "Hi"), ("assistant", "Hello!"), ("user", "Do you ship to Oslo?")),
                             system="You sell shoes.\n\nBe kind.", max_tokens=80, temperature=0.2, top_p=0.9,
                             stop=("###",))


def test_from_case_takes_any_object_of_that_shape_and_its_defaults():
    case = SimpleNamespace(system=None, messages=[SimpleNamespace(role="user", content="Hi")],
                           params=SimpleNamespace(max_tokens=256, temperature=None, top_p=None, stop=None))
    assert Conversation.from_case(case) == Conversation(messages=(("user", "Hi"),), max_tokens=256)


def test_a_case_without_messages_is_no_conversation():
    case = SimpleNamespace(system="s", messages=(), params=None)
    with pytest.raises(ValueError, match="at least one message"):
        Conversation.from_case(case)


# -- any input: a conversation or a ValueError, nothing else -----------------------------------------

values = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8) | st.lists(st.text(max_size=3))
pairs = st.tuples(st.sampled_from(["user", "assistant", "system", "", "User"]) | values, st.text(max_size=8) | values)


@settings(max_examples=300, deadline=None)
@given(messages=st.lists(pairs, max_size=4) | values, system=values, max_tokens=values, temperature=values,
       top_p=values, stop=st.lists(st.text(max_size=3), max_size=3) | values)
def test_any_fields_give_a_valid_conversation_or_a_value_error(messages, system, max_tokens, temperature, top_p,
                                                              stop):
    try:
        c = Conversation(messages=messages, system=system, max_tokens=max_tokens, temperature=temperature,
                         top_p=top_p, stop=stop)
    except ValueError:
        return
    assert c.messages and c.messages[-1][0] == "user"
    assert all(role in ("user", "assistant") and isinstance(text, str) and text for role, text in c.messages)
    assert c.temperature is None or 0 <= c.temperature <= 2
    assert c.top_p is None or 0 < c.top_p <= 1
    assert c.max_tokens is None or c.max_tokens >= 1
    assert isinstance(c.stop, tuple)
