r"""Adam / AdamW over stacked parameters, with a step count per model and an active mask.

``torch.optim.Adam`` keeps one step count per parameter tensor; stacked models whose epochs have
different lengths (subjects with different row counts) take different numbers of steps, so the
bias corrections must be per model, and a model without a batch this step must not move at all
(a zero gradient would still move it through the moments). Per model ``s`` with gradient ``g``:

.. math::
    g \leftarrow g + \lambda \theta \ \text{(Adam)}, \quad
    \theta \leftarrow \theta (1 - \eta \lambda) \ \text{(AdamW)}, \\
    m \leftarrow \beta_1 m + (1 - \beta_1) g, \quad v \leftarrow \beta_2 v + (1 - \beta_2) g^2,
    \quad t_s \leftarrow t_s + 1, \\
    \theta \leftarrow \theta - \frac{\eta}{1 - \beta_1^{t_s}}
        \frac{m}{\sqrt{v} / \sqrt{1 - \beta_2^{t_s}} + \epsilon}

in the operation order of PyTorch's single-tensor Adam, so a model's trajectory equals the one
``torch.optim.Adam`` produces for it alone up to float rounding.

The learning rate follows the configured epoch-wise scheduler: :class:`LearningRateOracle` runs
the model's own ``configure_optimizers`` result on the template and reads the rate per epoch.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor

from mpcl.models.base import EmotionDistributionModule


class StackedAdam:
    """Adam (or AdamW with ``decoupled=True``) on ``[S, ...]`` leaves.

    Args:
        params: Stacked leaves; axis 0 indexes the models.
        num_models: S.
        lr: Initial learning rate.
        betas: ``(beta1, beta2)``.
        eps: Denominator epsilon.
        weight_decay: ``lambda``: L2 penalty (Adam) or decoupled decay (AdamW).
        decoupled: AdamW's decoupled weight decay.
    """

    def __init__(
        self,
        params: list[Tensor],
        num_models: int,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        decoupled: bool = False,
    ) -> None:
        self.params = [p for p in params if p.requires_grad]
        self.lr = lr
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.weight_decay = weight_decay
        self.decoupled = decoupled
        device = self.params[0].device if self.params else torch.device("cpu")
        self.steps = torch.zeros(num_models, dtype=torch.float64, device=device)
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        # Reused work space: fresh full-size temporaries every step cost page faults (sys time).
        self._scratch = [(torch.empty_like(p), torch.empty_like(p)) for p in self.params]

    def zero_grad(self) -> None:
        """Drop the gradients (``set_to_none``, as Lightning does)."""
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self, active: Tensor | None = None) -> None:
        """One update of the models where ``active`` (``[S]`` bool) holds; all by default."""
        every = active is None or bool(active.all())
        if not every:
            active = active.to(self.steps.device)
            self.steps += active.to(self.steps.dtype)
        else:
            self.steps += 1
        # Bias corrections in float64 (PyTorch computes them as Python floats), then cast.
        step_size = self.lr / (1.0 - self.beta1**self.steps)
        correction2_sqrt = (1.0 - self.beta2**self.steps).sqrt()
        for p, m, v, (denom, update) in zip(
            self.params, self.exp_avg, self.exp_avg_sq, self._scratch, strict=True
        ):
            if p.grad is None:
                continue
            shape = (-1,) + (1,) * (p.dim() - 1)
            size = step_size.to(p.dtype).view(shape)
            root = correction2_sqrt.to(p.dtype).view(shape)
            grad = p.grad
            if self.weight_decay and not self.decoupled:
                # The gradient is dropped after the step, so the L2 term may go in place.
                grad.add_(p, alpha=self.weight_decay)
            if every:
                # In place, in the operation order of torch.optim.Adam.
                if self.weight_decay and self.decoupled:
                    p.mul_(1.0 - self.lr * self.weight_decay)
                m.lerp_(grad, 1.0 - self.beta1)
                v.mul_(self.beta2).addcmul_(grad, grad, value=1.0 - self.beta2)
                torch.sqrt(v, out=denom).div_(root).add_(self.eps)
                # addcdiv_(m, denom, value=-s) computes (-s * m) / denom: same order, same bits.
                torch.mul(m, -size, out=update).div_(denom)
                p.add_(update)
                continue
            keep = active.view(shape)
            new_p = p * (1.0 - self.lr * self.weight_decay) if self.decoupled else p
            new_m = m.lerp(grad, 1.0 - self.beta1)
            new_v = torch.addcmul(v * self.beta2, grad, grad, value=1.0 - self.beta2)
            denom = new_v.sqrt() / root + self.eps
            new_p = new_p + (-size) * new_m / denom
            m.copy_(torch.where(keep, new_m, m))
            v.copy_(torch.where(keep, new_v, v))
            p.copy_(torch.where(keep, new_p, p))


class LearningRateOracle:
    """The learning rate of every epoch, from the template module's own optimizer and scheduler.

    ``module.configure_optimizers()`` is called once on the template; its scheduler is stepped
    once per epoch (Lightning's ``interval: epoch``) and the rate read back, so any epoch-wise
    scheduler that does not watch a metric works unchanged.

    Args:
        module: The template module.

    Raises:
        NotImplementedError: The optimizer is not Adam / AdamW with one parameter group and no
            ``amsgrad`` / ``maximize``, or the scheduler is step-wise or watches a metric
            (per-subject metrics would need one scheduler per model).
    """

    def __init__(self, module: EmotionDistributionModule) -> None:
        config = module.configure_optimizers()
        self.scheduler: Any = None
        if isinstance(config, dict):
            optimizer = config["optimizer"]
            scheduler_config = config.get("lr_scheduler")
            if scheduler_config is not None:
                if not isinstance(scheduler_config, dict):
                    scheduler_config = {"scheduler": scheduler_config}
                self.scheduler = scheduler_config["scheduler"]
                interval = scheduler_config.get("interval", "epoch")
                frequency = scheduler_config.get("frequency", 1)
                if interval != "epoch" or frequency != 1:
                    raise NotImplementedError(
                        f"{type(module).__name__}.configure_optimizers: the many-subjects mode "
                        "supports epoch-wise schedulers with frequency 1, got "
                        f"interval={interval!r}, frequency={frequency}"
                    )
                if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                    raise NotImplementedError(
                        "ReduceLROnPlateau watches a metric that differs per subject; the "
                        "many-subjects mode needs a scheduler that depends on the epoch only"
                    )
        else:
            optimizer = config
        self.optimizer = optimizer
        self.kind = self._check(module, optimizer)

    @staticmethod
    def _check(module: EmotionDistributionModule, optimizer: Any) -> str:
        name = type(module).__name__
        if type(optimizer) not in (torch.optim.Adam, torch.optim.AdamW):
            raise NotImplementedError(
                f"{name}: optimizer {type(optimizer).__name__} is not supported by the "
                "many-subjects mode; expected torch.optim.Adam or torch.optim.AdamW"
            )
        if len(optimizer.param_groups) != 1:
            raise NotImplementedError(
                f"{name}: the many-subjects mode supports one parameter group, got "
                f"{len(optimizer.param_groups)}"
            )
        group = optimizer.param_groups[0]
        for flag in ("amsgrad", "maximize", "capturable", "differentiable"):
            if group.get(flag):
                raise NotImplementedError(
                    f"{name}: optimizer option {flag}=True is not supported by the many-subjects "
                    "mode"
                )
        return "adamw" if isinstance(optimizer, torch.optim.AdamW) else "adam"

    @property
    def lr(self) -> float:
        """The learning rate of the current epoch."""
        return float(self.optimizer.param_groups[0]["lr"])

    def build(self, params: list[Tensor], num_models: int) -> StackedAdam:
        """The stacked optimizer with the template optimizer's hyper-parameters."""
        group = self.optimizer.param_groups[0]
        return StackedAdam(
            params,
            num_models,
            lr=float(group["lr"]),
            betas=tuple(float(b) for b in group["betas"]),
            eps=float(group["eps"]),
            weight_decay=float(group["weight_decay"]),
            decoupled=self.kind == "adamw",
        )

    def end_epoch(self) -> float:
        """Step the scheduler (end of an epoch); returns the next epoch's learning rate."""
        if self.scheduler is not None:
            with warnings.catch_warnings():
                # The template optimizer never steps: it only carries the rate.
                warnings.filterwarnings("ignore", message=".*lr_scheduler.step\\(\\).*")
                self.scheduler.step()
        return self.lr
