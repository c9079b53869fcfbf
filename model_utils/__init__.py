"""PLM Playground's model layer: settings, registry, model manager and task functions.

Importable and testable without Gradio. The task functions are plain functions, exported here::

    import model_utils
    model_utils.fill_mask("Paris is the [MASK] of France.")          # list[list[dict]], one list per mask
    model_utils.next_sentence("I was hungry.", "So I ate.")            # {"is_next", "not_next"}
    model_utils.classify("What a lovely film!")                        # [{"label", "score"}, ...]
    model_utils.attention("The cat sat on the mat.")                   # tokens and [layer][head][query][key]
    model_utils.word_vectors(["A river bank.", "A bank loan."], "bank")   # each occurrence at every layer
    model_utils.next_token("The weather today is", top_k=10)             # the next-token distribution, filtered
    model_utils.generate("Once upon a time", strategy="sample", seed=1)  # tokens with probability and rank
    model_utils.score_text("The cat sat on the mat.")                   # per-token log-probability, perplexity

Each lives in the module of its task (``model_utils.fill_mask.fill_mask`` ...); importing this package
imports torch and transformers once (2.3 s measured on 2 busy cores, against 3.5 s for ``import torch,
transformers`` alone), which every use of a task needs anyway.
"""

from __future__ import annotations

from model_utils.attention import attention, attention_arrays, attention_math
from model_utils.classify import classify
from model_utils.contextual import (explore_word, find_examples, nearest_neighbours, sense_probe,
                                    sentence_similarity, similarity_by_layer, word_vectors)
from model_utils.errors import Notice, UserError
from model_utils.explain import explain
from model_utils.fill_mask import fill_mask, fill_mask_requests, fill_masks_jointly
from model_utils.generate import generate, generate_stream, next_token
from model_utils.perplexity import bert_vs_gpt, score_text
from model_utils.next_sentence import next_sentence, score_paragraph

__all__ = ["Notice", "UserError", "attention", "attention_arrays", "attention_math", "classify", "explain",
           "fill_mask", "fill_mask_requests", "fill_masks_jointly", "next_sentence", "score_paragraph",
           "explore_word", "find_examples", "nearest_neighbours", "sense_probe", "sentence_similarity",
           "similarity_by_layer", "word_vectors",
           "bert_vs_gpt", "generate", "generate_stream", "next_token", "score_text"]
