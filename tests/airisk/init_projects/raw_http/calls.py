import os

import httpx
import requests

GEMINI_URL = "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
MISTRAL_BASE = os.environ.get("MISTRAL_BASE", "https://api.mistral.ai/v1")


def translate(text: str) -> str:
    r = httpx.post(GEMINI_URL, headers={"x-goog-api-key": os.environ["GEMINI_API_KEY"]},
                   json={"contents": [{"parts": [{"text": text}]}]})
    return r.json()["candidates"][0]["content"]["parts"][0]["text"]


def rewrite(text: str) -> str:
    body = {"model": "mistral-small-latest", "messages": [{"role": "user", "content": text}]}
    r = requests.post(f"{MISTRAL_BASE}/chat/completions", json=body, timeout=10)
    return r.json()["choices"][0]["message"]["content"]


def weather(city: str) -> dict:
    return httpx.get(f"https://example.com/weather/{city}").json()


def ping(client: httpx.Client) -> int:
    # the product's own route (an app with an /api/chat endpoint): no provider
    return client.post("/api/chat", json={"message": "hi"}).status_code
