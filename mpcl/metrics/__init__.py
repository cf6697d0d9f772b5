"""Label-distribution metrics: functional forms, TorchMetrics classes and the collection."""

from mpcl.metrics.collection import LDLMetrics
from mpcl.metrics.functional import (
    HIGHER_IS_BETTER,
    LDL_METRIC_FUNCTIONS,
    LDL_METRICS,
    MetricInfo,
    canberra,
    chebyshev,
    clark,
    cosine,
    intersection,
    kl_divergence,
)
from mpcl.metrics.ldl import Canberra, Chebyshev, Clark, Cosine, Intersection, KLDivergence

__all__ = [
    "HIGHER_IS_BETTER",
    "LDL_METRICS",
    "LDL_METRIC_FUNCTIONS",
    "Canberra",
    "Chebyshev",
    "Clark",
    "Cosine",
    "Intersection",
    "KLDivergence",
    "LDLMetrics",
    "MetricInfo",
    "canberra",
    "chebyshev",
    "clark",
    "cosine",
    "intersection",
    "kl_divergence",
]
