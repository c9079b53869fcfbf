"""The vocabulary projection of a masked LM at chosen positions only (Fill-Mask asks for its masks)."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch


@contextlib.contextmanager
def head_only_at(model: Any, rows: torch.Tensor, columns: torch.Tensor) -> Iterator[bool]:
    """While active, the encoder hands the MLM head only the hidden states at (rows, columns).

    The vocabulary projection is the costliest layer of a small masked LM (30k x hidden per
    token), and Fill-Mask needs it at the masks only; the head is position-wise, so its output
    there is unchanged. Yields False (and changes nothing) for a model without a separate encoder.
    A model with its own ``project_only_at(rows, columns)`` context (the ONNX Runtime int8 model) is asked to
    do the same.
    """
    if hasattr(model, "project_only_at"):
        with model.project_only_at(rows, columns):
            yield True
        return
    encoder = getattr(model, "base_model", model)
    if encoder is model:
        yield False
        return

    def gather(_module: Any, _inputs: Any, output: Any) -> Any:
        picked = output[0][rows, columns].unsqueeze(0)  # (1, number of masks, hidden)
        if isinstance(output, tuple):
            return (picked, *output[1:])
        output.last_hidden_state = picked
        return output

    handle = encoder.register_forward_hook(gather)
    try:
        yield True
    finally:
        handle.remove()


def logits_at(model: Any, inputs: dict[str, torch.Tensor], rows: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """The masked LM's vocabulary logits at (rows[i], columns[i]) only, shape ``(len(rows), vocabulary)``,
    projected there alone where the model allows it (:func:`head_only_at`), else picked from the whole output."""
    with head_only_at(model, rows, columns) as sparse:
        logits = model(**inputs).logits
    return logits[0] if sparse else logits[rows, columns]
