"""What a trained network's settings imply, asked by the generic code instead of the spec's class (standard library
only, like :mod:`robustcs.specs`, whose network spec dataclasses inherit these).

:class:`NetworkSpec` is the interface with its defaults; :class:`UnetTraits` and :class:`VarNetTraits` are the
U-Net's and the VarNet's answers, read from their fields (``input``, ``maps``, ``self_supervised``). A new trained
network's spec is a frozen dataclass subclassing :class:`NetworkSpec` (overriding what differs); its torch side is a
:class:`robustcs.networks.Network`, and its family's registry entry ties the two together (robustcs.families).
"""

from __future__ import annotations


class NetworkSpec:
    """What every trained network's spec answers about itself.

    A subclass is a frozen dataclass whose fields are the network's settings: besides its architecture, the training
    fields the generic loop reads (epochs, lr, lr_step, lr_gamma, batch_size, loss, train_fraction, self_supervised,
    max_train_slices, max_val_slices, precision)."""

    def reads_maps(self) -> bool:
        """Whether the network reads the ESPIRiT maps of its slices."""
        return False

    def kspace_output(self) -> bool:
        """Whether the network yields a predicted k-space F S f(A^H y), needed by test-time training."""
        return False

    def check(self) -> None:
        """Cross-field checks (each field's type and range: config/schema.yaml ``method_<family>``, checked at
        start-up); ValueError naming the key."""

    def check_published(self) -> None:
        """Refuse (ValueError naming the key) settings that published weights (a ``checkpoint:`` variant) cannot
        serve."""


class UnetTraits(NetworkSpec):
    """The U-Net: ``input: complex`` (the TTT study's) reads the maps and predicts k-space; ``input: rss`` is
    fastMRI's."""

    def reads_maps(self) -> bool:
        return self.input == "complex"  # A^H y through the maps

    def kspace_output(self) -> bool:
        return self.input == "complex"  # F S of its complex image

    def check(self) -> None:
        if self.self_supervised > 0 and self.input != "complex":  # cross-field: the loss needs a complex image
            raise ValueError("self_supervised: the self-supervised loss needs a complex image; set input: complex")

    def check_published(self) -> None:
        if self.input != "rss":
            raise ValueError("input: a checkpoint U-Net takes fastMRI's input (the zero-filled RSS image, "
                             "instance-normalised; input: rss); the complex-input U-Net has no published weights")


class VarNetTraits(NetworkSpec):
    """The VarNet: always a k-space prediction; the ESPIRiT maps only with ``maps: espirit``."""

    def reads_maps(self) -> bool:
        return self.maps == "espirit"

    def kspace_output(self) -> bool:
        return True  # its final k-space through its maps

    def check_published(self) -> None:
        if self.maps != "learned":
            raise ValueError("maps: a checkpoint VarNet estimates its own maps as fastMRI's did (maps: learned)")
