"""The keyword arguments of ``fit`` / ``fit_many``, checked once into one frozen record."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jmlp.arguments import check_choice, check_int
from jmlp.backprop import GRADIENTS
from jmlp.feedback import RULES
from jmlp.net import MLP
from jmlp.precondition import Kfac

NAN_POLICIES = ("stop", "skip")


@dataclass(frozen=True)
class Options:
    """How to train (the arguments of :func:`jmlp.fit`, which documents each); per-member values
    (``l2``, ``tol``, ``patience``, ``min_delta``, ``hparams``) are checked against N later."""

    epochs: int = 100
    batch_size: int | None = None
    key: Any = None
    validation: tuple | None = None
    evaluate: Mapping | None = None
    l2: Any = 0.0
    hparams: Mapping | None = None
    gradient: str = "backprop"
    rule: str = "backprop"
    feedback: Any = None
    alignment: bool = False
    tol: Any = None
    patience: Any = None
    min_delta: Any = 0.0
    progress: bool = False
    callback: Callable | None = None
    checkpoint_path: str | Path | None = None
    checkpoint_every: int | None = None
    resume: bool = False
    nan_policy: str = "stop"
    mesh: Any = None
    opt_state: Any = None
    block_size: int | None = None
    shuffle: bool = True
    sample_weight: Any = None
    preconditioner: Kfac | None = None

    def __post_init__(self):
        check_int("epochs", self.epochs, 1)
        check_choice("gradient", self.gradient, GRADIENTS)
        check_choice("nan_policy", self.nan_policy, NAN_POLICIES)
        check_choice("rule", self.rule, RULES)
        if self.rule != "backprop" and self.gradient != "backprop":
            raise ValueError(f"gradient: rule {self.rule!r} runs its own backward pass; give "
                             f"gradient='backprop', got {self.gradient!r}")  # fmt: skip
        if not isinstance(self.alignment, bool):
            raise TypeError(f"alignment: expected True or False, got {self.alignment!r}")
        if self.alignment and self.rule == "backprop":
            raise ValueError("alignment: the angles compare a learning rule's updates with the "
                             "gradient, and rule='backprop' is the gradient (every angle 0); "
                             "give rule='fa', 'dfa' or 'sign'")  # fmt: skip
        if not isinstance(self.shuffle, bool):
            raise TypeError(f"shuffle: expected True or False, got {self.shuffle!r}")
        if self.block_size is not None:
            check_int("block_size", self.block_size, 1)
        if self.callback is not None and not callable(self.callback):
            raise TypeError(f"callback: expected a callable, got {type(self.callback).__name__}")
        self._check_checkpoints()
        self._check_preconditioner()

    def _check_preconditioner(self) -> None:
        given = self.preconditioner
        if given is None:
            return
        if not isinstance(given, Kfac):
            raise TypeError(f"preconditioner: expected jmlp.kfac(...) or None, got {given!r:.60}")
        if self.rule != "backprop":
            raise ValueError(f"preconditioner: K-FAC preconditions the gradient of backprop; "
                             f"give rule='backprop', got {self.rule!r}")  # fmt: skip
        if self.gradient != "backprop":
            raise ValueError("gradient: K-FAC's factors come from the hand-written pass's forward "
                             f"cache; give gradient='backprop', got {self.gradient!r}")  # fmt: skip

    def _check_checkpoints(self) -> None:
        path, every = self.checkpoint_path, self.checkpoint_every
        if every is not None:
            check_int("checkpoint_every", every, 1)
        if path is None and (every is not None or self.resume):
            raise ValueError("checkpoint_path: needed by checkpoint_every / resume=True, got None")
        if path is not None and not Path(path).parent.is_dir():
            raise ValueError(f"checkpoint_path: directory {Path(path).parent} does not exist")

    @property
    def monitor(self) -> str | None:
        """What ``patience`` watches: ``"val_loss"`` with validation, else ``"loss"``; None off."""
        if self.patience is None:
            return None
        return "val_loss" if self.validation is not None else "loss"


def check_net(net: Any) -> None:
    if not isinstance(net, MLP):
        raise TypeError(f"net: expected a jmlp.MLP, got {type(net).__name__}")
