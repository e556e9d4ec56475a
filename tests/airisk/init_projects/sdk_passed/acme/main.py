import os

import openai

from acme.summary import Summarizer

summarizer = Summarizer(openai.OpenAI(base_url=os.environ.get("ACME_OPENAI_BASE_URL")), style="long")


def digest(texts: list[str]) -> list[str]:
    return [t.upper() for t in texts]
