from openai import OpenAI


class Summarizer:
    """Holds a client it is given: the scanner must find where it was built."""

    def __init__(self, client: OpenAI, style: str = "short") -> None:
        self.client = client
        self.style = style

    def summarize(self, text: str) -> str:
        answer = self.client.chat.completions.create(
            model="gpt-4.1-mini", messages=[{"role": "user", "content": text}])
        return answer.choices[0].message.content
