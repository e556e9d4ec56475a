"""airisk: the composition root (the CLI, `airisk up`, the pytest plugin) over probes, monitor, chaos
and dashboard."""


def discover(discover_system: bool = True) -> dict:
    """Chaos Toolkit's discovery (`chaos discover airisk`): it imports the distribution's first top-level
    package, which is this one, and calls ``discover``; the activities live in `chaosairisk`."""
    from chaosairisk import discover as _discover

    return _discover(discover_system)
