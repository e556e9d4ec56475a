"""Chaos Toolkit extension for airisk: break an AI provider behind airisk's fault proxy (or emulator) from
an experiment, and probe what that did to a target, a product feature and a drill.

Follows the Chaos Toolkit extension conventions: this top-level ``chaos<name>`` package exposes
`__version__` and `discover`, and its activities are the functions listed in the ``__all__`` of
`chaosairisk.actions` (add a leased fault, remove faults, reset) and `chaosairisk.probes` (probe a
target, a feature's status, a drill verdict), each with typed arguments and a docstring. Every call to
the control API goes through `chaos.control.client.ControlClient` (it sends ``AIRISK_CONTROL_TOKEN`` when
set). Installed with ``pip install 'airisk[chaostoolkit]'``; ``chaos discover airisk --no-install`` lists it.

An activity that cannot do its job raises `chaosairisk.errors.AiriskActivityFailed` (a chaoslib
`ActivityFailed`) with one line naming the argument or server and the problem.
"""

from chaosairisk.errors import AiriskActivityFailed

__version__ = "0.1.0"

EXTENSION = "chaosairisk"
MODULES = ("chaosairisk.actions", "chaosairisk.probes")


def discover(discover_system: bool = True) -> dict:
    """What ``chaos discover`` reports: this extension's actions and probes, with their arguments.

    airisk discovers nothing of the system: which providers to break is in the experiment."""
    from chaoslib.discovery.discover import discover_actions, discover_probes, initialize_discovery_result

    discovery = initialize_discovery_result(EXTENSION, __version__, "airisk")
    discovery["activities"].extend(discover_actions("chaosairisk.actions"))
    discovery["activities"].extend(discover_probes("chaosairisk.probes"))
    return discovery


__all__ = ["EXTENSION", "MODULES", "AiriskActivityFailed", "__version__", "discover"]
