"""The shop's support answer on the question's topic (shipping, returns, order status, sizing, payment, ...).

At most three sentences and 64 words (the storefront's local fallback gets 64 tokens), and never a
promise of a refund: refunds are the returns team's to approve.
"""

from __future__ import annotations

import re

# Topic: (regular expressions found at the start of a word of the question, the answer). The order breaks ties:
# "my mug arrived broken, can I get a refund?" is about the damage first.
TOPICS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("damaged", ("damaged", "broken", "broke", "cracked", "smashed", "shattered", "dented", "defective",
                 "faulty", "stopped working", "doesn't work", "does not work", "not working", "dead on arrival"),
     "That should not happen, and we want to put it right. Please send your order number and a photo of the "
     "damaged item through the contact form, and the team will review it for a free replacement or a refund."),
    ("missing", ("missing", "not in the box", "only received", "incomplete", "wrong item", "wrong colour",
                 "wrong color", "wrong size was sent", "instead of"),
     "If something is missing or wrong in your parcel, first check the tracking email, because larger orders "
     "sometimes ship in several boxes. If it is not a split shipment, send us your order number and a photo of "
     "what arrived, and we will send the right item out to you."),
    ("refund", ("refund", "money back", "my money", "reimburs", "charged twice", "double charged", "credited"),
     "Refunds are handled by our returns team once a returned item is back at our warehouse. Approved refunds "
     "go to your original payment method and usually show within 5 to 10 business days, and you can follow "
     "each step under Orders in your account."),
    ("cancel", ("cancel", "change my order", "address", "edit my order", "modify"),
     "Orders can be cancelled or edited, including the delivery address, within one hour of purchase from "
     "Orders in your account. After that the parcel may already be packed, but you can still return it once "
     "it arrives."),
    ("returns", ("return", r"sen(d|ding)\b.{0,24}\bback\b", "exchange", "swap"),
     "You can return or exchange unused items within 30 days of delivery, and returns are free: start one "
     "from Orders in your account and print the prepaid label. Once the item reaches our warehouse, we email "
     "you within a few business days."),
    ("status", ("where is my", "where's my", "track", "status", "hasn't arrived", "has not arrived",
                "not arrived", "still waiting", "haven't received", "have not received", "not received",
                "order number", "when will my", "says delivered", "marked as delivered", "not at my door",
                "lost"),
     "You can check your order status any time under Orders in your account, or with the tracking link in "
     "your shipping confirmation email. If the tracking has not moved for three business days, reply with your "
     "order number and we will chase the carrier for you."),
    ("international", ("international", "abroad", "overseas", "outside the", "customs", "duties", "import",
                       "canada", "mexico", "australia", "europe", "germany", "france", "japan", "uk",
                       "united kingdom", "ireland", "new zealand", "country", "countries"),
     "Yes, we ship to most countries worldwide, and international delivery usually takes 7 to 14 business "
     "days. Customs duties and import taxes are set by the destination country and are paid on delivery "
     "unless checkout shows them as prepaid."),
    ("shipping", ("ship", "deliver", "arrive", "dispatch", "express", "next day", "next-day", "courier",
                  "postage", "weekend", "saturday", "po box"),
     "Standard shipping is free on orders over $50 and usually takes 3 to 5 business days, and express "
     "delivery arrives in 1 to 2 business days for $9.95. Orders placed before 2 pm ship the same day, with a "
     "tracking link by email."),
    ("sizing", ("size", "sizing", "fit", "too small", "too big", "too tight", "too large", "measure", "length",
                "width", "wide", "narrow", "petite", "tall"),
     "Each product page has a size chart with measurements in centimetres and inches; if you are between "
     "sizes, we suggest the larger one. If something does not fit, you can exchange it for another size free "
     "of charge within 30 days."),
    ("payment", ("pay", "card", "paypal", "apple pay", "google pay", "klarna", "instalment", "installment",
                 "declined", "currency", "bank"),
     "We accept Visa, Mastercard, American Express, PayPal, Apple Pay and Google Pay, and orders over $50 can "
     "be paid in four interest-free instalments. If a card is declined, check that the billing address matches "
     "your bank's records, or try another payment method."),
    ("warranty", ("warranty", "guarantee", "repair", "lifetime", "covered"),
     "Electronics come with a two-year warranty and most other products with one year, covering defects in "
     "materials and workmanship. To make a claim, send your order number and a short description or video of "
     "the fault through the contact form."),
    ("promo", ("discount", "promo", "coupon", "code", "voucher", "sale", "student", "newsletter", "black friday"),
     "Enter your promo code in the Discount code box at checkout before you pay; one code works per order. If "
     "a code does not work, check its expiry date and minimum spend, and note that codes do not apply to "
     "items already on sale."),
    ("account", ("password", "log in", "login", "sign in", "account", "email address", "username", "locked"),
     "To reset your password, choose Sign in, then Forgot password, and we will email you a reset link that "
     "works for 24 hours. If the email does not arrive, check your spam folder and make sure you use the "
     "address your account was created with."),
    ("stock", ("in stock", "restock", "back in stock", "sold out", "out of stock", "available", "pre-order",
               "preorder"),
     "When an item is sold out, click Notify me on its product page and we will email you as soon as it is "
     "back in stock. Restocks usually take 2 to 4 weeks, and the product page shows an expected date when we "
     "have one."),
    ("price", ("price match", "cheaper", "lower price", "price drop", "price", "match"),
     "We match the price of identical items sold by major retailers within 14 days of your purchase. Send us a "
     "link to the lower price and your order number, and the team will check it; a price drop on our own site "
     "is matched as store credit."),
    ("gift", ("gift", "present", "wrap"),
     "You can add gift wrapping and a personal message at checkout, and choose a gift receipt so no prices "
     "are shown. Gift cards come in amounts from $10 to $200, arrive by email and never expire."),
    ("pickup", ("pickup", "pick up", "pick it up", "collect", "in store", "in person", "store near"),
     "You can choose free click-and-collect at checkout, and we email you when your order is ready, usually "
     "within two hours during opening times. Bring the email and a photo ID; we hold orders for 7 days."),
    ("invoice", ("invoice", "receipt", "vat", "tax"),
     "You can download an invoice or receipt for any order under Orders in your account, with the VAT shown. "
     "If you need a company name or tax number on it, add them in your account details and download it again."),
    ("care", ("clean", "wash", "dishwasher", "care", "dry", "iron", "stain", "mould", "mold", "smell"),
     "Most of our products last longest with a gentle hand wash in warm, soapy water and air drying. Check the "
     "care label or the product page first, since some items are dishwasher- or machine-safe and others are "
     "not."),
    ("battery", ("battery", "charge", "charging", "hours"),
     "Battery life is listed on each product page; our wireless headphones run about 30 hours on a charge, and "
     "a 10-minute charge over USB-C gives about 3 hours of playback. Charging fully takes about two hours."),
    ("compatible", ("compatible", "work with", "works with", "iphone", "android", "bluetooth", "mac", "windows",
                    "pair", "connect"),
     "Our wireless products connect over Bluetooth and work with iPhone, Android, Windows and Mac devices; "
     "each product page lists the exact Bluetooth version. To pair, hold the power button for five seconds and "
     "pick the device in your Bluetooth settings."),
    ("contact", ("speak to", "talk to", "human", "person", "phone number", "call you", "contact", "agent",
                 "complain", "manager"),
     "You can reach our support team by live chat from 8 am to 8 pm on weekdays, or by email at any time; we "
     "answer emails within one business day. The phone number is on our Contact page."),
)
_TOPIC_PATTERNS = tuple((name, tuple(re.compile(r"\b" + k) for k in keys)) for name, keys, _ in TOPICS)
FALLBACK = ("Thanks for your question! Could you share a little more detail, such as your order number or the "
            "product you mean? Our help centre also covers shipping, returns, sizing and payments.")
PROMISE = ("Thanks for getting in touch! I'll process a full refund to your card right away, so you will see the "
           "money back within the hour.")


def topic(question: str) -> str | None:
    """The support topic a question is about (the one with the most keywords found), or None."""
    lowered = " ".join(question.lower().replace("’", "'").split())
    best, hits = None, 0
    for name, patterns in _TOPIC_PATTERNS:
        found = sum(1 for p in patterns if p.search(lowered))
        if found > hits:
            best, hits = name, found
    return best


def support(question: str, *, wrong: bool = False) -> str:
    """The shop's answer on the question's topic (``wrong``: a refund promised, whatever was asked)."""
    if wrong:
        return PROMISE
    name = topic(question)
    return next((answer for t, _, answer in TOPICS if t == name), FALLBACK)
