"""An exponential moving average of the model's weights (`train.ema`), the model that is
evaluated and saved when it is on.

After every optimiser step each averaged weight moves `1 - d` of the way to the trained one,
with `d = min(train.ema, (1 + t) / (10 + t))` at update `t`: the usual warm-up (TensorFlow's
`ExponentialMovingAverage(num_updates=...)`, timm's `ModelEmaV2`) so the average does not
drag the random initial weights through a short training. Batch norm's running statistics
are averaged the same way (its step counter is copied), so the averaged model carries
statistics of its own weights' recent past.

Not `torch.optim.swa_utils.AveragedModel`: it reads its update counter back from the device
on every update (a host sync per step on a GPU) and has no warm-up.
"""

from __future__ import annotations

import copy
from typing import Any

import torch


class WeightAverage:
    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.updates = 0
        self.model = copy.deepcopy(model).requires_grad_(False)
        self.model.train(model.training)
        self._paired: torch.nn.Module | None = None  # the trained model the lists below are of
        self._lists: tuple[list[torch.Tensor], ...] = ()

    def _pairs(self, model: torch.nn.Module) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        """(averaged floats, trained floats, averaged others, trained others), in one order.
        Built once per trained model and kept: the optimiser, batch norm and `restore` all
        update the tensors in place, so the lists stay the model's (~70 tensors that would
        otherwise be gathered again at every step)."""
        if self._paired is not model:
            averaged = [*self.model.parameters(), *self.model.buffers()]
            trained = [*model.parameters(), *model.buffers()]
            floats = [i for i, t in enumerate(averaged) if t.is_floating_point()]
            others = [i for i, t in enumerate(averaged) if not t.is_floating_point()]
            self._lists = (
                [averaged[i] for i in floats],
                [trained[i].detach() for i in floats],
                [averaged[i] for i in others],
                [trained[i] for i in others],
            )
            self._paired = model
        return self._lists  # type: ignore[return-value]

    def factor(self) -> float:
        """The decay of the next update (warm-up included)."""
        t = self.updates
        return min(self.decay, (1.0 + t) / (10.0 + t))

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        d = self.factor()
        averaged, trained, averaged_other, trained_other = self._pairs(model)
        torch._foreach_lerp_(averaged, trained, 1.0 - d)  # one fused kernel per dtype and device, not one per tensor
        if averaged_other:
            torch._foreach_copy_(averaged_other, trained_other)
        self.updates += 1

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.updates = int(state["updates"])
