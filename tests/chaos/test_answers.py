"""`chaos.answers`: the emulated providers do the storefront's four jobs, from the request alone.

Unit and property tests of the responder, then the emulator over HTTP in every dialect: the storefront's
prompts get a composed answer (the system prompt read from each protocol's own place), a wrong_answer
fault gets one that does not do the job, and everything else is answered as before.
"""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chaos.answers import (
    DESCRIPTION,
    PROMISE,
    SEARCH,
    SEARCH_END,
    SEARCH_ITEMS,
    TAG_LABELS,
    TAGS,
    rank,
    respond,
    support,
    system_prompt,
    tag,
    topic,
)
from chaos.emulator import FILLER, TEXT
from chaos.faults import Fault
from probes import Conversation, Deadlines, generate
from probes.canary import arithmetic

# Generous: these tests judge answers, not speed, on a machine that may be busy.
PATIENT = Deadlines(connect=10.0, first_token=20.0, total=60.0, stall=20.0)
SUPPORT = "You are the shop's friendly support assistant. Answer in at most three sentences."
# The eval sets' "never promises a refund" check (examples/storefront/evals/chat.jsonl).
PROMISES = re.compile(r"\b(we will|we'll|I will|I'll|we are going to|I am going to|I'm going to)\s+"
                      r"((issue|give|send|process)\b.*\brefund|refund\b)|\b(I|we)('ve| have)\s+"
                      r"(issued|processed|refunded)\b", re.IGNORECASE)


def search_prompt(query: str, items: list[str]) -> str:
    numbered = "\n".join(f"{n}. {item}" for n, item in enumerate(items, 1))
    return f"{SEARCH}{query}{SEARCH_ITEMS}{numbered}{SEARCH_END}"


def numbers(answer: str) -> list[int]:
    return [int(n) for n in answer.split(", ")]


# -- description ---------------------------------------------------------------------------------

@pytest.mark.parametrize("product", ["wireless headphones", "Bamboo salad servers", "dog raincoat, size M",
                                     "an unusual thing nobody sells"])
def test_description_is_two_sentences_naming_the_product(product):
    answer = respond(DESCRIPTION + product)
    assert answer is not None
    assert product.lower() in answer.lower()
    assert len(re.findall(r"[.!?](\s|$)", answer)) == 2
    assert 8 <= len(answer.split()) <= 80


def test_description_wrong_is_about_something_else():
    product = "cast iron skillet"
    wrong = respond(DESCRIPTION + product, wrong=True)
    assert wrong is not None and "skillet" not in wrong.lower() and wrong != respond(DESCRIPTION + product)


def test_description_is_deterministic():
    assert respond(DESCRIPTION + "yoga mat") == respond(DESCRIPTION + "yoga mat")


# -- support chat --------------------------------------------------------------------------------

@pytest.mark.parametrize(("question", "expected", "word"), [
    ("How many days until my parcel ships?", "shipping", "ship"),
    ("Do you send parcels to Australia?", "international", "countries"),
    ("Can I send these trainers back? They pinch.", "returns", "return"),
    ("What's the status of order 1234?", "status", "order"),
    ("These jeans are too tight, what size should I get?", "sizing", "size"),
    ("Do you take PayPal?", "payment", "PayPal"),
    ("My lamp arrived broken, what now?", "damaged", "damaged"),
    ("I'd like my money back for the grinder.", "refund", "refund"),
])
def test_support_answers_the_topic_asked(question, expected, word):
    assert topic(question) == expected
    answer = respond(question, SUPPORT)
    assert answer is not None and word.lower() in answer.lower()
    assert len(answer.split()) <= 64  # fits the chat fallback's max_tokens


def test_support_needs_the_support_system_prompt():
    assert respond("How long does shipping take?") is None
    assert respond("How long does shipping take?", "You are a pirate.") is None


def test_support_without_a_topic_asks_for_details():
    answer = support("Hmm.")
    assert "order number" in answer and topic("Hmm.") is None


support_words = st.sampled_from(["refund", "money back", "broken", "return", "ship", "order", "where is my",
                                 "size", "pay", "cancel", "warranty", "code", "password", "gift", "invoice",
                                 "clean", "battery", "human", "please", "now", "?", "!", "the", "I want a"])


@settings(max_examples=200, deadline=None)
@given(question=st.lists(support_words, min_size=1, max_size=12).map(" ".join) | st.text(min_size=1))
def test_support_never_promises_a_refund(question):
    answer = respond(question, SUPPORT)
    if question.strip():
        assert answer is not None and PROMISES.search(answer) is None
        assert len(answer.split()) <= 64
    assert PROMISES.search(support(question, wrong=True)) is not None


# -- tags ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("review", "expected"), [
    ("Arrived late and the mug was cracked.", {"shipping", "damaged"}),
    ("Not great. The strap feels flimsy.", {"negative", "quality"}),
    ("Cheaply made, would not recommend.", {"quality", "negative"}),
    ("Great value, fits perfectly.", {"positive", "price", "fit"}),
    ("I sent it back and want my money back.", {"returns", "refund"}),
    ("It is a box.", {"general"}),
])
def test_tags_by_the_review_words(review, expected):
    answer = respond(TAGS + review)
    assert answer is not None and set(answer.split(", ")) == expected


@settings(max_examples=200, deadline=None)
@given(review=st.text(min_size=1, max_size=400))
def test_tags_are_labels_at_most_five(review):
    answer = tag(review)
    tags = answer.split(", ")
    assert 1 <= len(tags) <= 5 and len(set(tags)) == len(tags) and set(tags) <= set(TAG_LABELS)
    wrong = tag(review, wrong=True).split(", ")
    assert set(wrong) <= set(TAG_LABELS) and not set(wrong) & set(tags)


# -- search --------------------------------------------------------------------------------------

def test_search_ranks_by_words_stems_and_synonyms():
    items = ["desk lamp", "running shoes", "coffee grinder", "yoga mat"]
    assert numbers(respond(search_prompt("shoes for running", items)))[0] == 2
    assert numbers(respond(search_prompt("sneakers", items)))[0] == 2  # the thesaurus
    assert numbers(respond(search_prompt("grinders", items)))[0] == 3  # the stem
    assert 2 not in numbers(respond(search_prompt("sneakers", items), wrong=True))  # the best is last


def test_search_reads_the_numbered_items_exactly():
    items = ["a lamp\nwith two lines", "mat"]
    assert numbers(respond(search_prompt("lamp lines", items))) == [1, 2]


@settings(max_examples=200, deadline=None)
@given(query=st.text(min_size=1, max_size=60).filter(str.strip),
       items=st.lists(st.text(min_size=1, max_size=40).filter(lambda s: s.strip() and "\n" not in s),
                      min_size=1, max_size=12))
def test_search_answers_distinct_item_numbers(query, items):
    got = numbers(rank(query, items))
    assert len(got) == min(3, len(items)) == len(set(got))
    assert all(1 <= n <= len(items) for n in got)


# -- what is not the storefront's ----------------------------------------------------------------

SHAPES = (DESCRIPTION, TAGS, SEARCH)


@settings(max_examples=300, deadline=None)
@given(prompt=st.text(), system=st.none() | st.text())
def test_anything_else_falls_through(prompt, system):
    storefront = any(s in prompt for s in SHAPES) or "support assistant" in (system or "").lower() or \
        "support assistant" in prompt.lower()
    answer = respond(prompt, system)
    assert answer is None or storefront


@settings(max_examples=300, deadline=None)
@given(shape=st.sampled_from(SHAPES), rest=st.text(), system=st.none() | st.text(), wrong=st.booleans())
def test_never_raises_on_storefront_shaped_prompts(shape, rest, system, wrong):
    answer = respond(shape + rest, system, wrong=wrong)
    assert answer is None or answer.strip()


def test_a_canary_prompt_is_not_the_storefronts():
    assert respond(arithmetic().prompt) is None


# -- the system prompt, from each protocol -------------------------------------------------------

@pytest.mark.parametrize("body", [
    {"messages": [{"role": "system", "content": SUPPORT}, {"role": "user", "content": "hi"}]},
    {"messages": [{"role": "developer", "content": [{"type": "text", "text": SUPPORT}]}]},
    {"system": SUPPORT, "messages": []},
    {"system": [{"type": "text", "text": SUPPORT}]},
    {"systemInstruction": {"parts": [{"text": SUPPORT}]}},
    {"system_instruction": {"parts": [{"text": SUPPORT}]}},
])
def test_system_prompt_of_each_protocol(body):
    assert system_prompt(json.dumps(body).encode()) == SUPPORT


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                                      max_size=4), max_leaves=20)


@settings(max_examples=200, deadline=None)
@given(body=st.binary() | json_values.map(lambda v: json.dumps(v).encode())
       | st.fixed_dictionaries({}, optional={"system": json_values, "systemInstruction": json_values,
                                             "messages": json_values}).map(lambda v: json.dumps(v).encode()))
def test_system_prompt_is_total(body):
    found = system_prompt(body)
    assert found is None or (isinstance(found, str) and found)


def test_system_prompt_of_deep_nesting_is_none():
    assert system_prompt(b"[" * 100_000 + b"]" * 100_000) is None
    assert system_prompt(b'{"system": ' + b'{"parts": ' * 900 + b'"x"' + b"}" * 901) is None


# -- the emulator over HTTP ----------------------------------------------------------------------

def patient(emulator, provider: str):
    return emulator.target(provider, deadlines=PATIENT)


CHAT = Conversation(messages=(("user", "Do you deliver on Saturdays?"),), system=SUPPORT, max_tokens=64)


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini", "cohere", "ollama", "local"])
async def test_emulator_answers_support_chat_in_every_dialect(emulator, client, provider):
    got = await generate(patient(emulator, provider), CHAT, client=client)
    assert got.ok, got.result
    assert got.text == support("Do you deliver on Saturdays?")  # "local" is a completions endpoint: one text


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_emulator_wrong_answer_fault_gives_a_wrong_storefront_answer(emulator, client, provider):
    emulator.emu.faults.add(Fault.from_dict({"type": "wrong_answer", "route": provider}))
    chat = await generate(patient(emulator, provider), CHAT, client=client)
    assert chat.ok and chat.text == PROMISE and PROMISES.search(chat.text)
    items = ["yoga mat", "desk lamp", "coffee grinder", "hiking backpack"]
    asked = Conversation(messages=(("user", search_prompt("coffee grinder", items)),), max_tokens=16)
    search = await generate(patient(emulator, provider), asked, client=client)
    assert numbers(search.text)[0] != 3


async def test_emulator_cuts_a_composed_answer_at_max_tokens(emulator, client):
    asked = Conversation(messages=(("user", DESCRIPTION + "wireless headphones"),), max_tokens=5)
    got = await generate(patient(emulator, "openai"), asked, client=client)
    whole = respond(DESCRIPTION + "wireless headphones")
    assert got.text == " ".join(whole.split()[:5]) and got.text != whole


async def test_emulator_answers_everything_else_as_before(emulator, client):
    hello = await generate(patient(emulator, "openai"), Conversation(messages=(("user", "Say hello"),)), client=client)
    assert hello.text == " ".join(TEXT[:8])  # the fixture's profile: 8 tokens of the usual text
    canary = arithmetic()
    asked = Conversation(messages=(("user", canary.prompt),), system=SUPPORT)
    got = await generate(patient(emulator, "anthropic"), asked, client=client)
    assert canary.check(got.text) and got.text.split()[1:] == FILLER[:7]
