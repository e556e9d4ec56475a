import os

from openai import OpenAI

groq = OpenAI(base_url="https://api.groq.com/openai/v1", api_key=os.environ["GROQ_API_KEY"])
gateway = OpenAI(base_url=os.getenv("GATEWAY_URL", "https://llm-gateway.acme.internal/v1"))


def quick(text: str) -> str:
    return groq.chat.completions.create(model="llama-3.1-8b-instant", messages=[]).choices[0].message.content


def routed(text: str) -> str:
    return gateway.chat.completions.create(model="gpt-4o", messages=[]).choices[0].message.content
