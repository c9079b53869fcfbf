"""Cost of the Contextual lab: 200 sentences x every layer, against a plain forward pass in the same run.

On ``--sentences`` sentences of the bundled corpus sample that contain ``--word`` (sense labels: the
document's source, so the probe has classes to learn), this measures, median of ``--repeat`` runs
after a warm-up that loads the model:

1. the reference: one ``model(**batch, output_hidden_states=True)`` over all sentences padded together
   (tokenizing included), what a notebook would do;
2. ``model_utils.contextual.word_vectors`` (vectors of every occurrence at every layer, as lists);
3. ``model_utils.contextual.explore_word``: everything the lab tab shows (similarity matrices, sense
   means, PCA per layer, the cross-validated probe per layer);

and prints each time, the ratios to the reference and whether explore_word met the 5 s target. With
``--neighbours`` it also times the first nearest-neighbour search (which encodes the corpus sample)
and a second one at another layer (served from the cache).

    python3 benchmarks/bench_lab.py [--sentences 200] [--threads 2] [--repeat 3] [--neighbours]
    taskset -c 0,1 python3 benchmarks/bench_lab.py     # 2 cores of a bigger machine
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

TARGET_S = 5.0


def corpus_sentences(word: str, count: int) -> tuple[list[str], list[str]]:
    """``count`` sentences of the corpus sample containing ``word``, and each one's source as its label."""
    from model_utils.contextual_corpus import corpus_sentences as sample, word_pattern

    pattern = word_pattern(word)
    found = [s for s in sample() if pattern.search(s.sentence) and len(s.sentence) < 400][:count]
    if len(found) < count:
        raise SystemExit(f"only {len(found)} sentences of the corpus sample contain {word!r}; lower --sentences")
    return [s.sentence for s in found], [s.source for s in found]


def median_s(fn, repeat: int) -> tuple[float, float]:
    """Median wall-clock seconds and median CPU seconds (all threads of this process) of ``fn``.

    On a machine shared with other work the wall time grows with their load; the CPU time does not
    (much), so both are printed: CPU seconds / threads is what a dedicated machine's wall time would be.
    """
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=200)
    parser.add_argument("--word", default="the")
    parser.add_argument("--model", default="bundled:minilm-pretrained")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the 2-vCPU target)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--neighbours", action="store_true", help="also time the corpus nearest-neighbour search")
    args = parser.parse_args()

    import torch

    from model_utils import contextual

    torch.set_num_threads(args.threads)
    sentences, labels = corpus_sentences(args.word, args.sentences)
    loaded = contextual._load(args.model)
    contextual.explore_word(sentences[:8], args.word, args.model)  # warm-up: model, scikit-learn imports

    def reference() -> None:
        batch = loaded.tokenizer(sentences, padding=True, return_tensors="pt").to(loaded.device)
        with torch.inference_mode():
            loaded.model(**batch, output_hidden_states=True)

    reference_s, reference_cpu = median_s(reference, args.repeat)
    vectors_s, vectors_cpu = median_s(lambda: contextual.word_vectors(sentences, args.word, args.model), args.repeat)
    result = contextual.explore_word(sentences, args.word, args.model, labels)
    explore_s, explore_cpu = median_s(lambda: contextual.explore_word(sentences, args.word, args.model, labels),
                                      args.repeat)

    config = loaded.model.config
    tokens = sum(len(ids) for ids in loaded.tokenizer(sentences)["input_ids"])
    print(f"model {args.model} ({config.num_hidden_layers} layers + embeddings, hidden {config.hidden_size}) on "
          f"{loaded.device}, torch threads {torch.get_num_threads()}, {os.cpu_count()} CPUs visible")
    print(f"{len(sentences)} sentences ({tokens} tokens) with {len(result['occurrences'])} occurrences of "
          f"{args.word!r}; probe over {len(set(labels))} labels, {result['probe']['folds']} folds")
    print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} (other processes share these CPUs)")
    print(f"{'':53s}   wall     CPU   wall ratio  CPU ratio")
    for name, wall, cpu in (("reference: one padded forward, output_hidden_states", reference_s, reference_cpu),
                            ("word_vectors (every occurrence, every layer, lists)", vectors_s, vectors_cpu),
                            ("explore_word (matrices, means, PCA, probe per layer)", explore_s, explore_cpu)):
        print(f"{name:53s} {wall:6.2f} s {cpu:6.2f} s   {wall / reference_s:5.2f}x     {cpu / reference_cpu:5.2f}x")
    dedicated = explore_cpu / args.threads
    print(f"target: {len(sentences)} sentences x {config.num_hidden_layers + 1} layers under {TARGET_S:.0f} s on "
          f"{args.threads} cores: wall {explore_s:.2f} s {'met' if explore_s < TARGET_S else 'NOT met'}; "
          f"CPU / {args.threads} = {dedicated:.2f} s {'met' if dedicated < TARGET_S else 'NOT met'}")
    if args.neighbours:
        start = time.perf_counter()
        first = contextual.nearest_neighbours(sentences[0], args.word, args.model, layer=config.num_hidden_layers)
        first_s = time.perf_counter() - start
        cached_s = median_s(lambda: contextual.nearest_neighbours(sentences[0], args.word, args.model, layer=1),
                            args.repeat)
        print(f"nearest neighbours, first search (encodes {first['searched_sentences']} corpus sentences, "
              f"{first['searched_words']} words): {first_s:7.2f} s; another layer, cached: {cached_s:5.2f} s")


if __name__ == "__main__":
    main()
