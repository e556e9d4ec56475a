import os

from langchain_anthropic import ChatAnthropic
from langchain_ollama import ChatOllama
from langchain_openai import ChatOpenAI

llm = ChatOpenAI(model="gpt-4o-mini").with_fallbacks([ChatAnthropic(model="claude-haiku-4-5")])
local = ChatOllama(model="llama3.2:1b", base_url=os.getenv("OLLAMA_URL", "http://localhost:11434"))


def answer(question: str) -> str:
    return llm.invoke(question).content


def draft(topic: str) -> str:
    return local.invoke(f"Draft a note about {topic}").content
