"""Names of the series the SLO rules record and the labels that name an objective (`slo`) and
its indicator (`sli`: availability or latency); every SLO series carries both. Defined once:
the rules (`rules.py`), the SLO dashboard and the generated promtool tests all read them.
Pure: no Pulumi.
"""

from __future__ import annotations

SLO_LABEL = "slo"
SLI_LABEL = "sli"

SLI_ERROR_PREFIX = "slo:sli_error:ratio_rate"  # + a window: slo:sli_error:ratio_rate5m
SLI_REQUESTS = "slo:sli_requests:rate5m"
SLI_BAD_REQUESTS = "slo:sli_bad_requests:rate5m"
OBJECTIVE = "slo:objective:ratio"
ERROR_BUDGET = "slo:error_budget:ratio"
CURRENT_BURN_RATE = "slo:current_burn_rate:ratio"
PERIOD_BURN_RATE = "slo:period_burn_rate:ratio"
BUDGET_REMAINING = "slo:period_error_budget_remaining:ratio"


def sli_error(window: str) -> str:
    """The error ratio of an SLI over `window` ('5m', '30d', ...)."""
    return f"{SLI_ERROR_PREFIX}{window}"
