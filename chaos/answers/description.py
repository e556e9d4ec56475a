"""Two upbeat sentences that name the product, with a benefit picked by the kind of product it is."""

from __future__ import annotations

import re
import zlib

# Kind of product (found by a word at the start of a word of the product) -> what to say about it.
KINDS: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("headphone", "earbud", "earphone", "speaker", "soundbar", "turntable", "microphone", "radio"),
     "delivers rich, clear sound and stays comfortable through a whole day of listening",
     "Its long-lasting battery and simple controls make it an easy companion at home, at work and on the go."),
    (("keyboard", "mouse", "charger", "cable", "hub", "webcam", "monitor", "power bank", "tablet", "laptop",
      "phone", "ssd", "router", "smart"),
     "makes your setup faster, tidier and more pleasant to use every day",
     "It is built to last and works straight out of the box with the devices you already own."),
    (("grinder", "kettle", "press", "pan", "skillet", "knife", "knives", "cutting board", "blender", "toaster",
      "pot", "oven", "spatula", "whisk", "teapot", "mixing", "measuring", "espresso", "coffee", "tea", "spice",
      "baking", "cookware", "utensil", "jar", "container", "apron"),
     "brings a little more joy and a lot less fuss to your kitchen",
     "It is easy to clean, built for daily use and looks great on the counter."),
    (("bottle", "tumbler", "flask", "thermos", "mug", "cup", "lunch box", "lunchbox"),
     "keeps your drinks just the way you like them, wherever the day takes you",
     "It is leak-proof, easy to carry and tough enough for the commute, the gym and the trail."),
    (("backpack", "tent", "hiking", "camping", "sleeping bag", "headlamp", "trekking", "hammock", "trail",
      "compass", "cooler", "lantern"),
     "is ready for every adventure, from weekend hikes to long days outdoors",
     "Light, tough and thoughtfully designed, it keeps up with you mile after mile."),
    (("yoga", "dumbbell", "kettlebell", "resistance band", "foam roller", "jump rope", "running", "fitness",
      "workout", "gym", "exercise", "cycling", "bike", "shoe", "sneaker", "trainer", "sport", "swim"),
     "supports every workout with comfort, grip and durability you can count on",
     "Whether you are just starting out or training hard, it helps you move better and feel great."),
    (("jacket", "sock", "shirt", "hoodie", "sweater", "scarf", "beanie", "glove", "jeans", "raincoat", "coat",
      "dress", "pyjama", "pajama", "slipper", "boot", "hat", "leggings", "shorts", "wool", "cotton"),
     "combines soft, comfortable materials with a clean look you will reach for again and again",
     "It is easy to care for and made to keep its shape wash after wash."),
    (("lamp", "candle", "blanket", "pillow", "cushion", "throw", "rug", "vase", "planter", "plant", "clock",
      "curtain", "towel", "sheet", "duvet", "mirror", "shelf", "diffuser", "basket", "frame", "chair", "desk"),
     "adds warmth and style to any room while staying practical for everyday life",
     "It fits easily into your home and makes the space feel cosier from day one."),
    (("kid", "toddler", "baby", "toy", "puzzle", "blocks", "crayon", "plush", "game", "lego", "children"),
     "sparks hours of creative, screen-free fun for curious young minds",
     "It is made from safe, sturdy materials that stand up to enthusiastic play."),
    (("dog", "cat", "pet", "leash", "collar", "litter", "aquarium", "bird", "puppy", "kitten"),
     "keeps your four-legged friend happy, comfortable and well looked after",
     "It is durable, easy to clean and designed with pets and their people in mind."),
    (("soap", "shampoo", "conditioner", "lotion", "serum", "balm", "toothbrush", "razor", "cream", "perfume",
      "skincare", "moisturi", "sunscreen", "brush", "comb"),
     "turns your daily routine into a small moment of self-care",
     "It is gentle, effective and a pleasure to use morning and night."),
    (("suitcase", "luggage", "tote", "wallet", "duffel", "bag", "umbrella", "passport", "travel"),
     "makes every trip smoother, with smart details that keep your things organised",
     "It is sturdy, light and ready for daily commutes and long journeys alike."),
)
GENERIC = ("combines thoughtful design with quality materials for everyday use",
           "It is a simple, reliable choice you will be glad to have around.")
OPENINGS = ("Meet the {p}: it {a}.", "This {p} {a}.", "Say hello to the {p}, which {a}.")
OFF_TOPIC = (
    "Our bestselling rubber duck floats, squeaks and brightens every bath time. Pick up a pair and make "
    "bath night the best part of the day.",
    "Sunny days call for our striped beach umbrella, with a sturdy pole and bright colours. Plant it in "
    "the sand and enjoy the shade all afternoon.",
)


def describe(product: str, *, wrong: bool = False) -> str:
    """Two upbeat sentences that name ``product`` (``wrong``: about something else entirely)."""
    name = " ".join(product.split())
    if wrong:
        words = set(_words(name))
        return next((t for t in OFF_TOPIC if not words & set(_words(t))), OFF_TOPIC[0])
    if name[:1].isupper() and name[1:2].islower():
        name = name[0].lower() + name[1:]  # mid-sentence: "the Bamboo ..." reads as a typo
    lowered = name.lower()
    about, benefit = next(((a, b) for keys, a, b in KINDS if any(_has(lowered, k) for k in keys)), GENERIC)
    return _pick(OPENINGS, name).format(p=name, a=about) + " " + benefit


def _pick(options: tuple[str, ...], key: str) -> str:
    return options[zlib.crc32(key.encode("utf-8", "replace")) % len(options)]


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def _has(text: str, keyword: str) -> bool:
    """``keyword`` at the start of a word of ``text`` (so "bottle" finds "bottles")."""
    return re.search(r"\b" + re.escape(keyword), text) is not None
