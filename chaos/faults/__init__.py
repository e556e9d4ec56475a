"""Faults: the catalogue (one module a fault type, `chaos.faults.types`), a fault in force, and plans.

- `chaos.faults.catalogue`: `FaultType` (entry + effect hooks), `FAULT_TYPES`, `register`;
- `chaos.faults.wire`: the effects a fault returns and each injection point carries out;
- `chaos.faults.fault`: `Fault` (checked once, leased), `Scope`, `RequestInfo`, `FaultError`;
- `chaos.faults.plan`: `FaultSet` and the `Plan` it makes for one request.

Importing this package registers every fault type (each module under `chaos.faults.types`).
"""

from chaos.faults.catalogue import FAULT_TYPES, FaultType, known_fault_types, register
from chaos.faults.fault import MAX_LEASE_S, Fault, FaultError, RequestInfo, Scope, lease_s
from chaos.faults.plan import FaultSet, Plan
from chaos.faults.types import load as _load

_load()

__all__ = ["FAULT_TYPES", "MAX_LEASE_S", "Fault", "FaultError", "FaultSet", "FaultType", "Plan", "RequestInfo",
           "Scope", "known_fault_types", "lease_s", "register"]
