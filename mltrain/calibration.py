"""Putting a cross-validated ensemble's members on one scale, folded into their sigmoid heads.

The members are stopped at different epochs, so their scores sit on different scales: averaging
them lets the most confident member dominate, and thresholds chosen on the pooled out-of-fold
scores (one member's scale per image) do not fit the served mean. So, per member and finding:

1. **align** without labels: standardise the member's logits by their mean and spread on the fold
   it left out (``standardiser``);
2. **calibrate** with one logistic map per finding, shared by all members, fitted on the pooled
   standardised out-of-fold logits of every train + val image (``platt_parameters``); where several
   members left out the same fold, on the mean of their standardised logits.

Step 2 is the same monotone map for every image, so the pooled out-of-fold AUROC measures the
aligned scores without having used any fold's labels to adjust that fold (fitting a map per fold
would, and with a handful of positives per fold it inflates the pooled figure).

A member's output becomes ``sigmoid(slope * (z - centre) / scale + intercept)`` for its logit ``z``,
and since ``z = features . w + b`` that is the same network with the head's kernel column times
``slope / scale`` and a new bias (``head_parameters``, ``calibrate_head``): the saved and exported
networks carry their calibration, and serving is unchanged.
"""

import numpy as np

EPSILON = 1e-6
MIN_SCALE = 1e-3  # a member whose logits barely move keeps them rather than blowing them up
# Logistic regression on one feature; mild regularisation keeps the maps of rare findings sane.
REGULARISATION_C = 1.0


def logit(probabilities):
    p = np.clip(np.asarray(probabilities, dtype=np.float64), EPSILON, 1 - EPSILON)
    return np.log(p) - np.log1p(-p)


def sigmoid(z):
    return (1.0 / (1.0 + np.exp(-np.asarray(z, dtype=np.float64)))).astype(np.float32)


def standardiser(probabilities):
    """``(centre, scale)`` per column: mean and standard deviation of the logits of ``probabilities``."""
    return logit_standardiser(logit(probabilities))


def logit_standardiser(logits):
    """``(centre, scale)`` per column of ``logits``: their mean and standard deviation (at least ``MIN_SCALE``)."""
    logits = np.asarray(logits)
    return logits.mean(axis=0), np.maximum(logits.std(axis=0), MIN_SCALE)


def platt_parameters(scores, labels):
    """Per column of ``scores`` [N, K] (logits) against 0/1 ``labels`` [N, K]: ``(slopes, intercepts)``
    of ``sigmoid(slope * score + intercept)``.

    A column whose labels have one class keeps slope 1, intercept 0. A fitted slope at or below zero
    (higher scores meaning fewer positives) becomes zero, with the intercept the prevalence: the
    finding then gets a constant probability rather than an inverted ranking.
    """
    from sklearn.linear_model import LogisticRegression

    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).reshape(scores.shape)
    columns = scores.shape[1]
    slopes, intercepts = np.ones(columns), np.zeros(columns)
    for k in range(columns):
        y = labels[:, k]
        if y.min() == y.max():
            continue
        model = LogisticRegression(C=REGULARISATION_C).fit(scores[:, k : k + 1], y)
        slope, intercept = float(model.coef_[0, 0]), float(model.intercept_[0])
        if slope <= 0:
            slope, intercept = 0.0, float(logit(y.mean()))
        slopes[k], intercepts[k] = slope, intercept
    return slopes, intercepts


def head_parameters(centre, scale, slope, intercept):
    """The ``(slopes, intercepts)`` on a member's raw logit that standardise and then calibrate it."""
    member_slopes = np.asarray(slope) / np.asarray(scale)
    return member_slopes, np.asarray(intercept) - member_slopes * np.asarray(centre)


def fit_ensemble(held_out_probabilities, held_out_labels, member_folds=None):
    """Calibrate an ensemble from each member's raw probabilities on the fold it left out.

    ``held_out_probabilities``: one [n_f, K] array per member, on its fold's images;
    ``held_out_labels``: one [n_f, K] array per fold; ``member_folds``: each member's fold (default:
    member i left out fold i). Members that share a fold are standardised each on its own and
    averaged before the shared map is fitted, as serving averages them.

    Returns ``(heads, calibrated, figures)``: per member the ``(slopes, intercepts)`` for
    ``calibrate_head``; per fold its images' calibrated probabilities (the mean over the fold's
    members, as the served graph combines them); and the fitted numbers.
    """
    member_folds = list(range(len(held_out_probabilities))) if member_folds is None else list(member_folds)
    standardisers = [standardiser(p) for p in held_out_probabilities]
    standardised = [(logit(p) - centre) / scale for p, (centre, scale) in zip(held_out_probabilities, standardisers)]
    folds = range(len(held_out_labels))
    fold_members = [[m for m, f in enumerate(member_folds) if f == fold] for fold in folds]
    if any(not members for members in fold_members):
        raise ValueError("Every fold needs at least one member that left it out.")
    fold_scores = [np.mean([standardised[m] for m in members], axis=0) for members in fold_members]
    slope, intercept = platt_parameters(np.concatenate(fold_scores), np.concatenate(held_out_labels))
    heads = [head_parameters(centre, scale, slope, intercept) for centre, scale in standardisers]
    calibrated = [
        np.mean([sigmoid(slope * standardised[m] + intercept) for m in members], axis=0).astype(np.float32)
        for members in fold_members
    ]
    figures = {
        "slopes": slope.tolist(),
        "intercepts": intercept.tolist(),
        "members": [
            {"fold": int(f) + 1, "centres": c.tolist(), "scales": s.tolist()}
            for f, (c, s) in zip(member_folds, standardisers)
        ],
    }
    return heads, calibrated, figures


def apply(probabilities, slopes, intercepts):
    """``sigmoid(slope * logit(p) + intercept)`` per column: what ``calibrate_head`` does to a network's output."""
    return sigmoid(logit(probabilities) * np.asarray(slopes) + np.asarray(intercepts))


def calibrate_head(network, slopes, intercepts):
    """Fold ``z -> slope * z + intercept`` into ``network``'s ``head`` layer (in place); return ``network``."""
    head = network.get_layer("head")
    kernel, bias = (np.asarray(weight) for weight in head.get_weights())
    slopes, intercepts = np.asarray(slopes, dtype=kernel.dtype), np.asarray(intercepts, dtype=bias.dtype)
    head.set_weights([kernel * slopes, bias * slopes + intercepts])
    return network
