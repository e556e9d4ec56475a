from anthropic import AsyncAnthropic

from acme.clients import CLAUDE


async def classify(client: AsyncAnthropic, text: str) -> str:
    message = await client.messages.create(model="claude-sonnet-4-5", max_tokens=10,
                                           messages=[{"role": "user", "content": text}])
    return message.content[0].text


def tagline(product: str) -> str:
    return CLAUDE.messages.create(model="claude-haiku-4-5", max_tokens=30,
                                  messages=[{"role": "user", "content": product}]).content[0].text
