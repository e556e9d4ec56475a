"""``model_not_found``: the model is retired or renamed."""

from chaos.faults.catalogue import register
from chaos.faults.types._base import ErrorFault
from probes.result import ErrorKind


@register
class ModelNotFound(ErrorFault):
    name = "model_not_found"
    doc = "model retired or renamed: 404"
    expect = ErrorKind.MODEL_NOT_FOUND
