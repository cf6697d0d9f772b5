"""The six metrics as one MetricCollection, cloned per stage."""

from __future__ import annotations

from torchmetrics import Metric, MetricCollection

from mpcl.metrics.ldl import Canberra, Chebyshev, Clark, Cosine, Intersection, KLDivergence


class LDLMetrics(MetricCollection):
    """Chebyshev, Clark, Canberra, KL, Cosine and Intersection under their short keys.

    Usage in a LightningModule: ``self.val_metrics = LDLMetrics(prefix="val/")``, then
    ``self.val_metrics.update(preds, target)`` per step and
    ``self.log_dict(self.val_metrics)``: the logged keys are ``val/chebyshev`` ...
    ``val/intersection``.

    Args:
        prefix: Prepended to every key (``"train/"``, ``"val/"``, ``"test/"``).
    """

    def __init__(self, prefix: str | None = None) -> None:
        metrics: dict[str, Metric] = {
            "chebyshev": Chebyshev(),
            "clark": Clark(),
            "canberra": Canberra(),
            "kl": KLDivergence(),
            "cosine": Cosine(),
            "intersection": Intersection(),
        }
        # Each metric keeps its own state: compute groups would merge states that merely have
        # the same shape, which these (different sums) must not share.
        super().__init__(metrics, prefix=prefix, compute_groups=False)
