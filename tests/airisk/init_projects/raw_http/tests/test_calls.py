import httpx


def test_translate_against_the_real_api():
    # a test of the product: airisk init skips it
    httpx.post("https://api.openai.com/v1/chat/completions", json={"model": "gpt-4o"})
