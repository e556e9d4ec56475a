import anthropic
import openai

oai = openai.OpenAI()
claude = anthropic.Anthropic()


def reply(message: str) -> str:
    try:
        return oai.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": message}]) \
            .choices[0].message.content
    except openai.APIError:
        return claude.messages.create(model="claude-haiku-4-5", max_tokens=200,
                                      messages=[{"role": "user", "content": message}]).content[0].text


def caption(image_url: str) -> str:
    try:
        out = oai.responses.create(model="gpt-4o-mini", input=image_url)
        return out.output_text
    except openai.APIError:
        pass
    return "A product photo."


def moderate(text: str) -> bool:
    try:
        oai.moderations.create(input=text)
    except openai.APIError as exc:
        raise RuntimeError("moderation unavailable") from exc
    return True
