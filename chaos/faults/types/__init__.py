"""One module a fault type, each registering itself with `chaos.faults.catalogue.register`.

`load` imports every module here (found by listing the package, so a new fault type is one new
file and nothing else); `chaos.faults` calls it once.
"""

from __future__ import annotations

import importlib
import pkgutil


def load() -> None:
    for module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
        if not module.startswith("_"):
            importlib.import_module(f"{__name__}.{module}")
