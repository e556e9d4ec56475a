"""What airisk knows about each AI SDK family: which constructors make a client, which methods call the
model, which constructor arguments and environment variables set the base URL and the key, and the base
URL the SDK uses when none is given (so the proxy's route for it can be worked out)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from probes.catalog import CATALOG


@dataclass(frozen=True, slots=True)
class Family:
    name: str  # "openai", "anthropic", "langchain", ...
    kind: str  # "sdk", "litellm", "langchain"
    provider: str | None  # None: decided per call (LiteLLM's "provider/model", init_chat_model)
    base_kwargs: tuple[str, ...] = ()
    key_kwargs: tuple[str, ...] = ()
    base_env: str | None = None  # the environment variable the SDK reads its base URL from
    key_env: str | None = None
    default_base: str | None = None  # the SDK's base URL when none is given


def _f(name: str, kind: str, provider: str | None, base_kwargs: tuple[str, ...] = (), key_kwargs: tuple[str, ...] = (),
       base_env: str | None = None, key_env: str | None = None, default_base: str | None = None) -> Family:
    return Family(name, kind, provider, base_kwargs, key_kwargs, base_env, key_env, default_base)


_OPENAI = _f("openai", "sdk", "openai", ("base_url",), ("api_key",), "OPENAI_BASE_URL", "OPENAI_API_KEY",
             "https://api.openai.com/v1")
_AZURE = _f("openai", "sdk", "azure-openai", ("azure_endpoint", "base_url"), ("api_key",), "AZURE_OPENAI_ENDPOINT",
            "AZURE_OPENAI_API_KEY")
_ANTHROPIC = _f("anthropic", "sdk", "anthropic", ("base_url",), ("api_key",), "ANTHROPIC_BASE_URL",
                "ANTHROPIC_API_KEY", "https://api.anthropic.com")
_GENAI = _f("google-genai", "sdk", "gemini", (), ("api_key",), None, "GEMINI_API_KEY",
            "https://generativelanguage.googleapis.com")
_COHERE = _f("cohere", "sdk", "cohere", ("base_url",), ("api_key",), "CO_API_URL", "CO_API_KEY",
             "https://api.cohere.com")
_MISTRAL = _f("mistralai", "sdk", "mistral", ("server_url",), ("api_key",), None, "MISTRAL_API_KEY",
              "https://api.mistral.ai")
_OLLAMA = _f("ollama", "sdk", "ollama", ("host",), (), "OLLAMA_HOST", None, "http://127.0.0.1:11434")
_ROUTER = _f("litellm", "litellm", None, ("api_base", "base_url"), ("api_key",))


def _lc(provider: str | None, base_kwargs: tuple[str, ...], key_kwargs: tuple[str, ...], base_env: str | None,
        key_env: str | None, default_base: str | None = None) -> Family:
    return _f("langchain", "langchain", provider, base_kwargs, key_kwargs, base_env, key_env, default_base)


# Dotted constructor name (as imported) -> the family of the client it makes.
CONSTRUCTORS: dict[str, Family] = {
    "openai.OpenAI": _OPENAI, "openai.AsyncOpenAI": _OPENAI,
    "openai.AzureOpenAI": _AZURE, "openai.AsyncAzureOpenAI": _AZURE,
    "anthropic.Anthropic": _ANTHROPIC, "anthropic.AsyncAnthropic": _ANTHROPIC,
    "google.genai.Client": _GENAI, "google.genai.client.Client": _GENAI,
    "cohere.Client": _COHERE, "cohere.ClientV2": _COHERE, "cohere.AsyncClient": _COHERE,
    "cohere.AsyncClientV2": _COHERE,
    "mistralai.Mistral": _MISTRAL,
    "ollama.Client": _OLLAMA, "ollama.AsyncClient": _OLLAMA,
    "litellm.Router": _ROUTER,
    "langchain_openai.ChatOpenAI": _lc("openai", ("base_url", "openai_api_base"), ("api_key", "openai_api_key"),
                                       "OPENAI_BASE_URL", "OPENAI_API_KEY", "https://api.openai.com/v1"),
    "langchain_openai.AzureChatOpenAI": _lc("azure-openai", ("azure_endpoint",), ("api_key",),
                                            "AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_API_KEY"),
    "langchain_anthropic.ChatAnthropic": _lc("anthropic", ("base_url", "anthropic_api_url"),
                                             ("api_key", "anthropic_api_key"), "ANTHROPIC_BASE_URL",
                                             "ANTHROPIC_API_KEY", "https://api.anthropic.com"),
    "langchain_google_genai.ChatGoogleGenerativeAI": _lc("gemini", (), ("google_api_key", "api_key"), None,
                                                         "GOOGLE_API_KEY"),
    "langchain_mistralai.ChatMistralAI": _lc("mistral", ("endpoint", "base_url"), ("api_key", "mistral_api_key"),
                                             None, "MISTRAL_API_KEY"),
    "langchain_cohere.ChatCohere": _lc("cohere", ("base_url",), ("cohere_api_key",), None, "COHERE_API_KEY"),
    "langchain_ollama.ChatOllama": _lc("ollama", ("base_url",), (), "OLLAMA_HOST", None, "http://127.0.0.1:11434"),
    "langchain_community.chat_models.ChatOllama": _lc("ollama", ("base_url",), (), "OLLAMA_HOST", None,
                                                      "http://127.0.0.1:11434"),
    "langchain_groq.ChatGroq": _lc("groq", ("base_url",), ("api_key", "groq_api_key"), "GROQ_BASE_URL",
                                   "GROQ_API_KEY"),
    "langchain.chat_models.init_chat_model": _lc(None, ("base_url",), ("api_key",), None, None),
}

# The last attribute of a call on a client that sends a request to the model.
SDK_METHODS = frozenset({"create", "stream", "parse", "generate_content", "generate_content_stream", "chat",
                         "chat_stream", "complete", "complete_async", "stream_async", "generate", "embed",
                         "embeddings", "send_message", "count_tokens"})
LANGCHAIN_METHODS = frozenset({"invoke", "ainvoke", "stream", "astream", "batch", "abatch"})
ROUTER_METHODS = frozenset({"completion", "acompletion", "text_completion", "atext_completion", "embedding",
                            "aembedding"})

# Module-level functions that call a model directly (no client object).
MODULE_CALLS: dict[str, Family] = {
    "litellm.completion": _ROUTER, "litellm.acompletion": _ROUTER, "litellm.text_completion": _ROUTER,
    "litellm.embedding": _ROUTER, "litellm.aembedding": _ROUTER,
    "ollama.chat": _OLLAMA, "ollama.generate": _OLLAMA, "ollama.embed": _OLLAMA,
    "openai.chat.completions.create": _OPENAI, "openai.responses.create": _OPENAI,
}

# LiteLLM's "provider/model" prefixes (and init_chat_model's "provider:model") -> catalog providers.
MODEL_PREFIXES = {
    "openai": "openai", "azure": "azure-openai", "azure_openai": "azure-openai", "anthropic": "anthropic",
    "gemini": "gemini", "google_genai": "gemini", "mistral": "mistral", "mistralai": "mistral", "groq": "groq",
    "together_ai": "together", "together": "together", "deepseek": "deepseek", "openrouter": "openrouter",
    "fireworks_ai": "fireworks", "fireworks": "fireworks", "cohere": "cohere", "cohere_chat": "cohere",
    "ollama": "ollama", "ollama_chat": "ollama", "hosted_vllm": "vllm",
}


def provider_of_model(model: str) -> str | None:
    """The provider a model name implies: a "provider/" or "provider:" prefix, else a well-known family name."""
    for sep in ("/", ":"):
        prefix, found, _ = model.partition(sep)
        if found and prefix in MODEL_PREFIXES:
            return MODEL_PREFIXES[prefix]
    lowered = model.lower()
    if lowered.startswith(("gpt-", "o1", "o3", "o4", "chatgpt", "text-embedding")):
        return "openai"
    if lowered.startswith("claude"):
        return "anthropic"
    if lowered.startswith("gemini"):
        return "gemini"
    if lowered.startswith(("mistral", "codestral", "magistral")):
        return "mistral"
    if lowered.startswith("command"):
        return "cohere"
    return None


def bare_model(model: str) -> str:
    """A model name without LiteLLM's "provider/" or init_chat_model's "provider:" prefix."""
    for sep in ("/", ":"):
        prefix, found, rest = model.partition(sep)
        if found and prefix in MODEL_PREFIXES and rest:
            return rest
    return model


def _hostport(url: str) -> tuple[str, int | None] | None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    host = "127.0.0.1" if parts.hostname in ("localhost", "0.0.0.0", "::1") else parts.hostname
    return host, port or (443 if parts.scheme == "https" else 80)


def provider_of_url(url: str) -> str | None:
    """The catalog provider whose base URL has this URL's host (and, for local servers, port)."""
    mine = _hostport(url)
    if mine is None:
        return None
    for provider in CATALOG.values():
        theirs = _hostport(provider.base_url)
        if theirs is None or "YOUR-RESOURCE" in provider.base_url:
            continue
        if theirs == mine:
            return provider.name
    if mine[0].endswith(".openai.azure.com"):
        return "azure-openai"
    return None


# Paths of the provider protocols, for raw HTTP calls whose host is not a literal: path -> (dialect, provider
# when the path alone says it).
AI_PATHS = (
    ("/chat/completions", None), ("/completions", None), ("/responses", "openai"), ("/embeddings", None),
    ("/v1/messages", "anthropic"), ("/messages", "anthropic"), (":generatecontent", "gemini"),
    (":streamgeneratecontent", "gemini"), ("/v2/chat", "cohere"), ("/api/chat", "ollama"),
    ("/api/generate", "ollama"),
)


def ai_path(url: str) -> tuple[bool, str | None]:
    """Whether ``url`` (possibly with unknown parts) ends in a model API path, and the provider it implies."""
    lowered = url.lower().split("?")[0].rstrip("/")
    for path, provider in AI_PATHS:
        if lowered.endswith(path):
            return True, provider
    return False, None


# The version segment each protocol's SDK appends to its base URL (chaos.speakers' sdk_suffix; a test holds
# them equal), so the proxy route's path can be worked out from a base URL.
SDK_SUFFIX = {"openai": "", "anthropic": "/v1", "gemini": "/v1beta", "cohere": "/v2", "ollama": ""}


def proxy_base(provider: str, base_url: str | None, proxy: str) -> str:
    """The value to give a base URL setting so the product reaches ``provider`` through the proxy at ``proxy``.

    The proxy's route ``/<provider>`` forwards to the catalog base URL without its SDK version segment; a base
    URL that carries more path than that (``https://api.openai.com/v1``) keeps the rest after the route."""
    route = f"{proxy.rstrip('/')}/{provider}"
    entry = CATALOG.get(provider)
    if entry is None or base_url is None:
        return route
    suffix = SDK_SUFFIX.get(entry.dialect, "")
    upstream_path = urlsplit(entry.base_url).path.rstrip("/")
    if suffix and upstream_path.endswith(suffix):
        upstream_path = upstream_path[: -len(suffix)]
    try:
        path = urlsplit(base_url).path.rstrip("/")
    except ValueError:
        return route
    if path.startswith(upstream_path):
        return route + path[len(upstream_path):]
    return route
