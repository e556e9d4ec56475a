"""The numbered items ranked for a search query: word overlap, by stem, and a small shopping thesaurus."""

from __future__ import annotations

import re

STOPWORDS = frozenset(
    "a an the and or for to of in on with my me i im we our you your it its is are be that this those these "
    "some something anything thing things one ones want need needs looking look find get good best nice new "
    "which what who can could would should will very really just like so as at by from up out about".split())
# A shopper's word -> item words it means (each also matched by its stem).
THESAURUS: dict[str, tuple[str, ...]] = {
    "sneaker": ("shoe", "running"), "trainer": ("shoe",), "jog": ("running", "shoe"), "jogging": ("running",),
    "run": ("running",), "marathon": ("running", "shoe"), "footwear": ("shoe", "boot"),
    "earbud": ("headphone", "earphone"), "headphone": ("earbud", "earphone"), "earphone": ("headphone",),
    "headset": ("headphone",),
    "music": ("headphone", "speaker"), "listen": ("headphone", "speaker"), "listening": ("headphone", "speaker"),
    "podcast": ("headphone",), "noise": ("headphone",), "audio": ("headphone", "speaker"),
    "sound": ("headphone", "speaker"),
    "coffee": ("grinder", "espresso", "kettle"), "espresso": ("grinder", "coffee"), "bean": ("grinder", "coffee"),
    "grind": ("grinder",), "brew": ("coffee", "kettle", "press"), "tea": ("kettle", "teapot"),
    "typing": ("keyboard",), "type": ("keyboard",), "typist": ("keyboard",), "gaming": ("keyboard", "mouse"),
    "keys": ("keyboard",), "coding": ("keyboard", "monitor"),
    "reading": ("lamp", "light"), "read": ("lamp", "light"), "light": ("lamp",), "lighting": ("lamp",),
    "bright": ("lamp",), "desk": ("lamp", "desk"),
    "hydrat": ("water", "bottle"), "drink": ("bottle", "water", "mug", "tumbler"), "water": ("bottle",),
    "thirsty": ("water", "bottle"), "cold": ("insulated",), "hot": ("insulated", "kettle"),
    "thermos": ("insulated", "bottle"), "flask": ("insulated", "bottle"),
    "hike": ("hiking", "backpack", "boot"), "hiking": ("backpack", "boot"), "trek": ("hiking", "backpack"),
    "camping": ("tent", "backpack", "sleeping"), "camp": ("tent", "sleeping"), "outdoor": ("hiking", "tent"),
    "rucksack": ("backpack",), "daypack": ("backpack",), "bag": ("backpack", "tote", "bag"),
    "carry": ("backpack", "bag"), "travel": ("backpack", "luggage", "suitcase"),
    "yoga": ("mat",), "pilates": ("mat", "yoga"), "stretch": ("yoga", "mat", "band"), "stretching": ("yoga", "mat"),
    "workout": ("mat", "dumbbell", "band"), "exercise": ("mat", "dumbbell", "band"), "gym": ("dumbbell", "bag"),
    "sleep": ("pillow", "mask", "sleeping"), "sleeping": ("pillow", "bag"), "bed": ("pillow", "sheet", "duvet"),
    "rain": ("umbrella", "raincoat", "waterproof"), "wet": ("waterproof", "umbrella"),
    "warm": ("blanket", "jacket", "wool", "insulated"), "winter": ("jacket", "gloves", "wool", "scarf"),
    "cosy": ("blanket", "throw"), "cozy": ("blanket", "throw"),
    "cook": ("pan", "skillet", "knife"), "cooking": ("pan", "skillet", "knife"), "fry": ("pan", "skillet"),
    "chop": ("knife", "board"), "cut": ("knife", "board", "scissors"), "bake": ("baking", "oven", "tray"),
    "phone": ("charger", "case"), "charge": ("charger", "power"), "charging": ("charger", "power"),
    "battery": ("power", "charger"), "video": ("webcam",), "call": ("webcam", "headphone"),
    "plant": ("planter", "pot"), "garden": ("planter", "hose", "gloves"), "dog": ("leash", "collar", "pet"),
    "cat": ("litter", "pet"), "pet": ("leash", "collar", "bed"), "kid": ("toy", "puzzle"), "child": ("toy",),
}


def _stem(word: str) -> str:
    for suffix, keep in (("ies", "y"), ("ing", ""), ("es", ""), ("ed", ""), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("ss"):
            return word[: len(word) - len(suffix)] + keep
    return word


def numbered_items(listing: str) -> list[str]:
    """The items of a numbered listing ("1. a\\n2. b"); a line without a number continues the item before."""
    items: list[str] = []
    for line in listing.split("\n"):
        match = re.match(r"(\d{1,3})\. (.*)$", line)
        if match and int(match.group(1)) == len(items) + 1:
            items.append(match.group(2))
        elif items:  # an item with a line break in it
            items[-1] += " " + line
    return items


def relevance(query: str, item: str) -> float:
    """How well ``item`` matches ``query``: query words found in it (by stem), thesaurus words a bit less."""
    have = {_stem(w) for w in _words(item)}
    score = 0.0
    for word in dict.fromkeys(w for w in _words(query) if w not in STOPWORDS):
        stem = _stem(word)
        if stem in have or word in have:
            score += 1.0
            continue
        related = THESAURUS.get(word) or THESAURUS.get(stem) or ()
        if any(_stem(r) in have for r in related):
            score += 0.7
        elif len(stem) >= 5 and any(h.startswith(stem[:5]) for h in have if len(h) >= 5):
            score += 0.5  # "waterproofing" and "waterproof"
    return score


def rank(query: str, items: list[str], *, wrong: bool = False) -> str:
    """The numbers of the best three items, best first (``wrong``: the worst three)."""
    order = sorted(range(len(items)), key=lambda i: (-relevance(query, items[i]), i))
    if wrong:
        order = order[::-1]
    return ", ".join(str(i + 1) for i in order[:3])


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())
