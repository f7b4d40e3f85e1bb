"""Compiling the LRP walk with ``torch.compile``, and falling back to eager when that fails.

One switch, ``compile``, reaches here from :class:`isnet.ISNet`, ``python -m isnet.train
--compile``, ``app.py --compile`` and ``benchmarks/lrp_speed.py --compile``. It takes:

* ``None`` or ``False``: eager (the default);
* ``True`` or ``"default"``: Inductor with its default mode;
* ``"reduce-overhead"``: the fixed-shape GPU path: CUDA graphs replay the whole walk with one
  launch (shapes must stay fixed: a new batch size records a new graph; on the CPU this mode
  compiles like ``"default"``);
* ``"max-autotune"`` / ``"max-autotune-no-cudagraphs"``: Inductor tries kernel variants
  (longer compile).

What is compiled is the walk: the model's traced forward, the messages at the classifier and
the family's reverse walk, as one function (:meth:`isnet.ISNet.forward`'s heatmap branch). The
walk has no graph break for DenseNet, ResNet and VGG in every explain mode (the stochastic
variant draws its random numbers before the compiled part); ``tests/test_compile.py`` holds
that with ``fullgraph=True``. Compile time and what it buys are measured in
``docs/performance.md`` ("Compiled LRP").

A compile that fails (no C compiler, an operator Inductor cannot lower, any exception at
compile time or in a compiled call that the eager function does not raise too) logs **one**
warning on the ``isnet.compilation`` logger and the function runs eagerly from then on: the
result is the same, only slower. (Inductor may compile a backward only when it first runs; an
error there surfaces from ``loss.backward()``, outside this fallback.)
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from typing import Any

import torch

COMPILE_MODES: tuple[str, ...] = ("default", "reduce-overhead", "max-autotune",
                                  "max-autotune-no-cudagraphs")
"""The ``mode`` values of ``torch.compile`` the switch accepts."""

COMPILED_EXPLAIN = "compiled_explain"
"""The attribute :func:`compile_explain` sets on a model; :func:`isnet.explain` uses it."""

logger = logging.getLogger(__name__)


def compile_mode(setting: bool | str | None) -> str | None:
    """The ``torch.compile`` mode a ``compile`` switch asks for, or None for eager.

    Raises:
        ValueError: ``setting`` is not a bool, None or one of :data:`COMPILE_MODES`.
    """
    if setting is None or setting is False:
        return None
    if setting is True:
        return "default"
    if setting in COMPILE_MODES:
        return str(setting)
    raise ValueError(f"compile must be True, False or one of {', '.join(COMPILE_MODES)}; "
                     f"got {setting!r}")


class EagerFallback:
    """A function compiled by ``torch.compile`` that turns back into the eager function, for
    good, the first time compiling or running it raises (one warning, on the
    ``isnet.compilation`` logger).

    Args:
        function: the eager function.
        name: what to call it in the warning.
        mode: one of :data:`COMPILE_MODES`.
        fullgraph: refuse graph breaks (a break then counts as a failed compile).
        dynamic: ``torch.compile``'s ``dynamic`` (None: static first, dynamic on a new shape).
        compiler: the compiling function (``torch.compile``'s signature); tests pass one that
            raises.

    Attributes:
        failed: the exception that sent it back to eager, or None.
        first_call_seconds: wall time of the first compiled call (mostly compiling), or None.
    """

    def __init__(self, function: Callable[..., Any], name: str, mode: str = "default",
                 fullgraph: bool = False, dynamic: bool | None = None,
                 compiler: Callable[..., Any] = torch.compile) -> None:
        self.eager = function
        self.name = name
        self.mode = mode
        self.fullgraph, self.dynamic, self.compiler = fullgraph, dynamic, compiler
        self.failed: BaseException | None = None
        self.first_call_seconds: float | None = None
        self.compiled: Callable[..., Any] | None = None
        try:
            self.compiled = compiler(function, mode=mode, fullgraph=fullgraph, dynamic=dynamic)
        except Exception as error:  # noqa: BLE001 (any failure means: run eagerly)
            self._give_up(error)

    def __deepcopy__(self, memo: dict) -> EagerFallback:
        """A copied model gets its own, not yet compiled, function (compiled code is not
        copyable); a fallen-back one stays eager."""
        eager = copy.deepcopy(self.eager, memo)  # a method: bound to the copied model
        if self.compiled is None:
            return EagerFallback(eager, self.name, compiler=_eager_only)
        return EagerFallback(eager, self.name, self.mode, self.fullgraph, self.dynamic,
                             self.compiler)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.compiled is None:
            return self.eager(*args, **kwargs)
        if self.mode == "reduce-overhead":  # CUDA graphs: a new step may overwrite the last's
            torch.compiler.cudagraph_mark_step_begin()  # outputs (backward already ran)
        start = time.perf_counter()
        try:
            result = self.compiled(*args, **kwargs)
        except Exception as error:  # noqa: BLE001
            result = self.eager(*args, **kwargs)  # bad input raises its own error here, and
            self._give_up(error)  # the compiled function stays; else eager from now on
            return result
        if self.first_call_seconds is None:
            self.first_call_seconds = time.perf_counter() - start
        return result

    def _give_up(self, error: BaseException) -> None:
        self.failed, self.compiled = error, None
        summary = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
        logger.warning("compiling %s failed (%s: %s); running it eagerly instead (same "
                       "results, eager speed)", self.name, type(error).__name__, summary)


def _eager_only(function: Callable[..., Any], **options: Any) -> None:
    """A "compiler" that compiles nothing (the deep copy of a function that fell back)."""
    return None


def compile_explain(model: torch.nn.Module, setting: bool | str = True) -> torch.nn.Module:
    """Make :func:`isnet.explain` run ``model``'s walk compiled (the explorer's ``--compile``).

    The compiled walk is kept on the model itself (attribute :data:`COMPILED_EXPLAIN`), so two
    models in one process never share it; ``setting`` False removes it. Returns ``model``.
    The first explanation of each new input shape or mode compiles (seconds to minutes);
    conservation ledgers (``return_conservation``) are recorded inside the compiled walk.
    """
    from isnet.wrapper import explain_walk  # the wrapper imports this module

    mode = compile_mode(setting)
    if mode is None:
        if hasattr(model, COMPILED_EXPLAIN):
            delattr(model, COMPILED_EXPLAIN)
        return model
    object.__setattr__(model, COMPILED_EXPLAIN,
                       EagerFallback(explain_walk, f"the LRP walk of {type(model).__name__}",
                                     mode))
    return model
