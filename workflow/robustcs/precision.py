"""The float precision of the gradient loops: a network's training and its test-time training.

A U-Net or VarNet variant's ``precision`` and the ``ttt`` block's ``precision`` name one of

- ``fp32``: every matmul and convolution in IEEE float32 (on CUDA, TensorFloat-32 is switched off for both;
  PyTorch's default otherwise lets cuDNN convolutions use it);
- ``tf32``: float32 tensors, with matmuls and convolutions in TensorFloat-32 on CUDA (an Ampere or later card);
  on the CPU the same arithmetic as ``fp32``;
- ``bf16``: automatic mixed precision in bfloat16 (``torch.autocast``) on CUDA or the CPU: convolutions and
  matmuls in bfloat16, losses, FFTs, reductions and the optimiser's state in float32;
- ``fp16``: automatic mixed precision in float16 with dynamic loss scaling (``torch.amp.GradScaler``); CUDA only.

Only the loops that update weights use it: the reconstructions that are scored, the attacks and the validation
passes run in float32 whatever the setting.
"""

from __future__ import annotations

import contextlib
from typing import ContextManager

import torch

#: the settings, in the order of the config's enum
PRECISIONS = ("fp32", "tf32", "bf16", "fp16")
_AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


class MixedPrecision:
    """One loop's precision on one device: ``with amp.autocast(): loss = ...`` then ``amp.step(loss, optimizer)``.

    Creating it sets the process's TensorFloat-32 switches on CUDA (``fp32``: off, ``tf32``: on); on the CPU it
    changes no global state, so ``fp32`` and ``tf32`` there are the arithmetic of a run without this class.
    """

    def __init__(self, name: str, device: torch.device | str, where: str = "precision"):
        if name not in PRECISIONS:
            raise ValueError(f"{where}: expected one of {list(PRECISIONS)}, got {name!r}")
        self.name = name
        self.device = torch.device(device)
        if name == "fp16" and self.device.type != "cuda":
            raise ValueError(f"{where}: fp16 needs a CUDA device (this job runs on {self.device}); "
                             "use bf16 for mixed precision on the CPU")
        if self.device.type == "cuda":
            mode = "tf32" if name == "tf32" else "ieee"
            torch.backends.cuda.matmul.fp32_precision = mode
            torch.backends.cudnn.conv.fp32_precision = mode
        self.scaler = torch.amp.GradScaler("cuda") if name == "fp16" else None

    def autocast(self) -> ContextManager:
        """The forward pass and loss of one step: autocast for bf16/fp16, nothing otherwise."""
        if self.name in _AUTOCAST:
            return torch.autocast(self.device.type, dtype=_AUTOCAST[self.name])
        return contextlib.nullcontext()

    def step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """Backward pass and optimiser step (the gradients must have been zeroed): with fp16 the loss is scaled,
        the gradients unscaled, and a step with infinite gradients skipped (the scale then halves)."""
        if self.scaler is None:
            loss.backward()
            optimizer.step()
            return
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update()

    def __repr__(self) -> str:
        return f"MixedPrecision({self.name!r}, {self.device})"
