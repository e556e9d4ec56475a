"""``daily_quota``: a per-day quota used up (the speakers say where the nearest form is sent)."""

from chaos.faults.catalogue import register
from chaos.faults.types._base import ErrorFault
from probes.result import ErrorKind


@register
class DailyQuota(ErrorFault):
    name = "daily_quota"
    doc = ("a per-day quota spent: Gemini's 429 RESOURCE_EXHAUSTED whose QuotaFailure names "
           "a PerDay quotaId; elsewhere the provider's spent-quota form")
    expect = ErrorKind.QUOTA_EXHAUSTED
