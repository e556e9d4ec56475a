"""`airisk.yaml`: the model (`monitor.config.model`) and its loader (`monitor.config.loader`)."""

from monitor.config.loader import ConfigError, Problem, load_config, parse_config
from monitor.config.model import (
    AiriskConfig,
    DeadlinesConfig,
    LocalModelConfig,
    ProbeDefaults,
    Section,
    StorageConfig,
    TargetConfig,
    format_path,
)

__all__ = [
    "AiriskConfig",
    "ConfigError",
    "DeadlinesConfig",
    "LocalModelConfig",
    "ProbeDefaults",
    "Problem",
    "Section",
    "StorageConfig",
    "TargetConfig",
    "format_path",
    "load_config",
    "parse_config",
]
