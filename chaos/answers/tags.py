"""Review tags from the storefront's label set, picked by the review's words."""

from __future__ import annotations

import re

# The storefront's label set: its keyword heuristic's tags (KEYWORD_TAGS), and "general" for none.
TAG_LABELS = ("damaged", "quality", "shipping", "refund", "returns", "positive", "negative", "price", "fit",
              "customer-service", "general")
# Tag -> regular expressions found at the start of a word of the review ("delay" finds "delayed").
TAG_WORDS: dict[str, tuple[str, ...]] = {
    "damaged": ("broken", "broke", "damag", "crack", "scratch", "dent", "shatter", "smashed", "torn", "ripped",
                "chipped", "bent", "snapped", "leak"),
    "quality": ("defect", "quality", "flimsy", "cheaply made", "fell apart", "falls apart", "sturdy", "well made",
                "well-made", "durable", "solid", "stopped working", "fray", "peel", "build", "wobbl", "lasted",
                "craftsmanship", "materials"),
    "shipping": ("late", "delay", "shipping", "shipped", "deliver", "arriv", "package", "parcel", "courier",
                 "dispatch", "tracking", "postage"),
    "refund": ("refund", "money back", "reimburs"),
    "returns": ("return", r"sen(d|t|ding)\b.{0,24}\bback\b", "exchang"),
    "positive": ("great", "love", "excellent", "perfect", "recommend", "awesome", "fantastic", "amazing",
                 "happy", "delighted", "impressed", "best", "brilliant", "wonderful", "superb", "glad", "nice",
                 "comfortable", "good"),
    "negative": ("terrible", "awful", "worst", "disappoint", "useless", "waste", "regret", "horrible", "poor",
                 "unhappy", "frustrat", "avoid", "rubbish", "annoy", "hate", "junk", "bad"),
    "price": ("price", "expensive", r"cheap\b", "value", "worth", "cost", "bargain", "overpriced", "pricey",
              "affordable", "budget", "money"),
    "fit": ("size", "fit", "too small", "too big", "tight", "loose", "narrow", "snug", "sizing", "roomy",
            "too short", "too long"),
    "customer-service": ("support", "customer service", "staff", "replied", "responded", "agent", "email",
                         "called", "chat", "helpful team", "service team", "seller", r"nobody (answer|repl|respond)",
                         r"no (reply|response|answer)\b"),
}
_TAG_PATTERNS = {label: re.compile(r"\b(?:" + "|".join(words) + ")") for label, words in TAG_WORDS.items()}
_NEGATOR = re.compile(r"\b(not|never|no|n't|hardly|isn't|wasn't|didn't|doesn't|don't|wouldn't)\W+(\w+\W+){0,2}$")


def tag(review: str, *, wrong: bool = False) -> str:
    """Up to five labels of `TAG_LABELS`, comma-separated, by the review's words (``wrong``: the others)."""
    text = " ".join(review.lower().replace("’", "'").split())
    found: dict[str, int] = {}  # tag -> where it is first found
    for label, pattern in _TAG_PATTERNS.items():
        for match in pattern.finditer(text):
            label_here = label
            if label == "positive" and _NEGATOR.search(text[:match.start()]):
                label_here = "negative"  # "not great", "would not recommend"
            found[label_here] = min(found.get(label_here, match.start()), match.start())
    if "money back" in text:
        found.pop("price", None)  # "my money back" is about a refund, not the price
    picked = sorted(found, key=lambda t: found[t])[:5] or ["general"]
    if wrong:
        picked = [t for t in TAG_LABELS if t not in picked and t != "general"][:3]
    return ", ".join(picked)
