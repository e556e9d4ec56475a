import os

import litellm
from fastapi import FastAPI
from litellm import Router

app = FastAPI()
router = Router(
    model_list=[
        {"model_name": "primary", "litellm_params": {"model": "openai/gpt-4o-mini",
                                                     "api_base": os.getenv("PRIMARY_API_BASE")}},
        {"model_name": "backup", "litellm_params": {"model": "anthropic/claude-haiku-4-5",
                                                    "api_key": os.environ["BACKUP_KEY"]}},
    ],
    fallbacks=[{"primary": ["backup"]}],
)


@app.post("/v1/answer/{user}")
async def answer_question(user: str, question: str) -> str:
    response = await router.acompletion(model="primary", messages=[{"role": "user", "content": question}])
    return response.choices[0].message.content


def summarize(text: str) -> str:
    response = litellm.completion(model="groq/llama-3.1-8b-instant", fallbacks=["deepseek/deepseek-chat"],
                                  messages=[{"role": "user", "content": text}])
    return response.choices[0].message.content
