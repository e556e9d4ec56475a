import os

from anthropic import Anthropic

CLAUDE = Anthropic(api_key=os.getenv("ACME_CLAUDE_KEY"))
