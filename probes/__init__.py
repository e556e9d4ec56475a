"""How to talk to each AI backend, and measure one call."""

from probes.canary import Canary
from probes.catalog import CATALOG, Provider, get_provider
from probes.client import make_client
from probes.conversation import Conversation, Generation
from probes.result import ErrorKind, ProbeResult, Status
from probes.runner import generate, probe
from probes.target import Deadlines, Target

__all__ = [
    "CATALOG",
    "Canary",
    "Conversation",
    "Deadlines",
    "ErrorKind",
    "Generation",
    "ProbeResult",
    "Provider",
    "Status",
    "Target",
    "generate",
    "get_provider",
    "make_client",
    "probe",
]
