"""What the Contextual lab computes from word vectors: plain numpy and scikit-learn, no model.

Every function takes ``vectors`` shaped ``[occurrence, layer, hidden]`` (or one layer's
``[occurrence, hidden]``) and optional sense ``labels`` (one per occurrence, ``None`` = unlabelled)
and returns plain Python data:

* :func:`cosine_matrices`: the cosine similarity of every pair of occurrences at every layer;
* :func:`sense_similarity`: mean similarity of pairs with the same sense and with different senses;
* :func:`probe_by_layer`: a logistic-regression probe per layer, scored on held-out folds only
  (stratified k-fold cross-validation; the scaler is fitted inside each fold too), with its
  chance level and, for contrast, the accuracy on the very occurrences it was fitted on;
* :func:`project_2d`: a PCA projection of one layer's occurrences.

scikit-learn is imported inside the functions that need it, so importing this module is cheap.
Each function runs with one BLAS thread (:func:`one_blas_thread`).
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from typing import Iterator, Sequence

import numpy as np

from model_utils.errors import UserError, define

define({
    "contextual.probe_needs_two_senses": "The probe needs sense labels with at least two different senses "
                                         "(found {senses}): label the sentences like river | … and money | ….",
    "contextual.probe_needs_examples": "The probe needs at least 2 different labelled sentences for every sense; "
                                       "{sense} has {count}. Add sentences or remove that label.",
})

MAX_FOLDS = 5  # stratified folds of the probe (fewer when a sense has fewer occurrences)
_BLAS_LOCK = threading.RLock()


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run numpy/scipy linear algebra on one thread, one request at a time.

    These matrices are small (hundreds of rows), so threads gain nothing, and on a busy 2-core machine
    OpenBLAS threads waiting for each other made the PCA of 200 x 384 vectors take 6 s instead of 0.1 s.
    Only BLAS is limited (torch's own thread pool is untouched); the lock keeps concurrent requests from
    restoring each other's limits out of order.
    """
    from threadpoolctl import threadpool_limits

    with _BLAS_LOCK, threadpool_limits(limits=1, user_api="blas"):
        yield


def cosine_matrices(vectors: np.ndarray) -> np.ndarray:
    """``[layer, occurrence, occurrence]`` cosine similarities of ``vectors[occurrence, layer, hidden]``.

    A zero vector has similarity 0 with everything (instead of NaN).
    """
    by_layer = np.asarray(vectors, dtype=np.float64).transpose(1, 0, 2)
    norms = np.linalg.norm(by_layer, axis=-1, keepdims=True)
    unit = np.divide(by_layer, norms, out=np.zeros_like(by_layer), where=norms > 0)
    with one_blas_thread():
        return unit @ unit.transpose(0, 2, 1)


def _pair_means(matrix: np.ndarray, mask: np.ndarray) -> float | None:
    """Mean of ``matrix`` over the pairs i < j where ``mask`` holds; None without such pairs."""
    upper = np.triu(mask, k=1)
    return float(matrix[upper].mean()) if upper.any() else None


def sense_similarity(matrices: np.ndarray, labels: Sequence[str | None] | None = None) -> list[dict]:
    """Per layer: mean similarity of all pairs, of pairs with one sense and of pairs with two senses.

    Returns ``[{"layer", "all", "within", "between"}]``; ``within``/``between`` are None without
    enough labelled pairs. Unlabelled occurrences count only in ``all``.
    """
    count = matrices.shape[-1]
    names = list(labels) if labels is not None else [None] * count
    labelled = np.array([name is not None for name in names])
    same = np.array([[a == b for b in names] for a in names], dtype=bool).reshape(count, count)
    both = np.outer(labelled, labelled)
    everything = np.ones((count, count), dtype=bool)
    return [{"layer": layer,
             "all": _pair_means(matrix, everything),
             "within": _pair_means(matrix, same & both),
             "between": _pair_means(matrix, ~same & both)}
            for layer, matrix in enumerate(matrices)]


def check_probe_labels(labels: Sequence[str | None], groups: Sequence[object] | None = None) -> Counter:
    """Distinct groups (sentences) per labelled sense; UserError when a probe cannot be cross-validated on them."""
    groups = list(groups) if groups is not None else list(range(len(labels)))
    counts = Counter(label for label, _ in {(label, group) for label, group in zip(labels, groups) if label is not None})
    if len(counts) < 2:
        raise UserError("contextual.probe_needs_two_senses", senses=len(counts))
    sense, fewest = min(counts.items(), key=lambda item: item[1])
    if fewest < 2:
        raise UserError("contextual.probe_needs_examples", sense=sense, count=fewest)
    return counts


def _probe_pipeline(seed: int):
    """Standardise, then scikit-learn's default logistic regression (L2, lbfgs, multinomial). Scaling is part
    of the pipeline, so each fold fits it on its own training part only."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=seed))


def probe_by_layer(vectors: np.ndarray, labels: Sequence[str | None], *, groups: Sequence[object] | None = None,
                   folds: int = MAX_FOLDS, seed: int = 0) -> dict:
    """Held-out accuracy of a logistic-regression sense probe at every layer.

    Only labelled occurrences are used. Stratified group ``k``-fold cross-validation (``k`` = ``folds``,
    or fewer when a sense has fewer groups): every accuracy is measured on occurrences the probe never
    saw, and occurrences of one group (``groups``: the sentence they come from, so two occurrences in
    one sentence or a repeated sentence) never sit on both sides. Returns ``{"layers": [{"layer",
    "accuracy", "std", "train_accuracy"}], "chance", "folds", "count", "senses"}`` where ``chance`` is
    the accuracy of always answering the most frequent sense, ``train_accuracy`` the mean accuracy on
    each fold's own training occurrences (what a probe scored without held-out data would report), and
    ``senses`` the number of groups per sense.
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import StratifiedGroupKFold, cross_validate

    groups = list(groups) if groups is not None else list(range(len(labels)))
    counts = check_probe_labels(labels, groups)
    keep = [i for i, label in enumerate(labels) if label is not None]
    targets = np.array([labels[i] for i in keep])
    fold_groups = np.unique([str(groups[i]) for i in keep], return_inverse=True)[1]
    data = np.asarray(vectors, dtype=np.float64)[keep]
    k = max(2, min(folds, min(counts.values())))
    # One split for every layer: the layers are compared on the same held-out sentences (and it is computed once).
    splits = list(StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed).split(data[:, 0], targets,
                                                                                          fold_groups))
    layers = []
    with warnings.catch_warnings(), one_blas_thread():  # a separable fold may stop at max_iter: still valid
        warnings.simplefilter("ignore", ConvergenceWarning)
        for layer in range(data.shape[1]):
            scores = cross_validate(_probe_pipeline(seed), data[:, layer], targets, cv=splits, return_train_score=True)
            layers.append({"layer": layer, "accuracy": float(scores["test_score"].mean()),
                           "std": float(scores["test_score"].std()),
                           "train_accuracy": float(scores["train_score"].mean())})
    majority = Counter(targets.tolist()).most_common(1)[0][1]
    return {"layers": layers, "chance": majority / len(keep), "folds": k, "count": len(keep),
            "senses": dict(sorted(counts.items()))}


def project_2d(layer_vectors: np.ndarray) -> dict:
    """PCA of one layer's ``[occurrence, hidden]`` vectors onto 2 axes.

    Returns ``{"points": [[x, y], ...], "explained": [ratio of axis 1, ratio of axis 2]}``; with
    fewer than 3 occurrences (or identical vectors) the missing axes are 0.
    """
    from sklearn.decomposition import PCA

    data = np.asarray(layer_vectors, dtype=np.float64)
    count = data.shape[0]
    components = min(2, count - 1, data.shape[1]) if count > 1 else 0
    points = np.zeros((count, 2))
    explained = [0.0, 0.0]
    if components > 0 and np.ptp(data, axis=0).max() > 0:
        pca = PCA(n_components=components, random_state=0)
        with one_blas_thread():
            points[:, :components] = pca.fit_transform(data)
        explained[:components] = [float(r) for r in pca.explained_variance_ratio_]
    return {"points": points.tolist(), "explained": explained}
