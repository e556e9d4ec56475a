"""The demo's incident script, on a compressed clock.

Shapes follow the real incident histories in Chu et al., "An Empirical Characterization
of Outages and Incidents in Public Services for Large Language Models" (ICPE 2025,
arXiv 2501.12469): Anthropic incidents are short and mostly capacity ("overloaded"),
OpenAI's run longer and often start as elevated errors or latency, and vendors post
to their status page minutes after users feel it. One real minute is about one demo
second here, so a 7-minute loop holds three incidents.
"""

DEMO_TIMELINE = {
    "repeat": True,
    "steps": [
        {"at": 30, "add": {"id": "anthropic-overload", "type": "overloaded", "route": "anthropic",
                           "probability": 0.7, "for_s": 90}},
        {"at": 75, "status": {"provider": "anthropic", "name": "Elevated errors on the Messages API",
                              "impact": "major", "stage": "investigating"}},
        {"at": 120, "status": {"provider": "anthropic", "resolve": True}},
        {"at": 180, "add": {"id": "openai-slow", "type": "first_token_delay", "route": "openai",
                            "params": {"delay_ms": 2500, "jitter_ms": 1500}, "for_s": 80}},
        {"at": 200, "add": {"id": "openai-5xx", "type": "server_error", "route": "openai",
                            "params": {"status": 503}, "probability": 0.4, "for_s": 60}},
        {"at": 230, "status": {"provider": "openai", "name": "Increased latency and errors for API requests",
                               "impact": "minor", "stage": "investigating"}},
        {"at": 290, "status": {"provider": "openai", "resolve": True}},
        {"at": 330, "add": {"id": "gemini-429", "type": "rate_limited", "route": "gemini",
                            "params": {"retry_after": 20}, "for_s": 50}},
        {"at": 420, "clear": True},
    ],
}
