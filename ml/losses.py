"""Metric-learning losses over a batch of (product label, L2-normalised embedding).

All take ``y_true`` = integer product labels [B] (or [B, 1]) and ``y_pred`` = embeddings [B, D]
that are already L2-normalised (the model does it), and return one loss per anchor [B], so Keras'
usual reduction (mean over the batch) applies. Every pair in the batch is used: with P x K batches
(see ml.sampler) each anchor has K-1 positives and (P-1)K negatives. The exception is the
proxy-based ``ProxyAnchorLoss``, which takes similarities to class proxies instead (ml.proxies).
Written with ``keras.ops`` only so they run on any Keras backend.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops


def _pair_masks(y_true: Any, batch_size: Any) -> tuple[Any, Any]:
    labels = ops.reshape(ops.cast(y_true, "int32"), (-1,))
    same = ops.equal(ops.expand_dims(labels, 0), ops.expand_dims(labels, 1))
    not_self = ops.logical_not(ops.eye(batch_size, dtype="bool"))
    positives = ops.cast(ops.logical_and(same, not_self), "float32")
    negatives = ops.cast(ops.logical_not(same), "float32")
    return positives, negatives


def _similarities(y_pred: Any) -> Any:
    emb = ops.cast(y_pred, "float32")
    return ops.matmul(emb, ops.transpose(emb))


def _masked_mean(values: Any, mask: Any) -> Any:
    # Anchors without any pair of that kind contribute 0 instead of NaN.
    return ops.sum(values * mask, axis=1) / ops.maximum(ops.sum(mask, axis=1), 1.0)


@keras.saving.register_keras_serializable(package="lookalike")
class ContrastiveLoss(keras.losses.Loss):
    """Siamese contrastive loss (Hadsell et al. 2006) on every pair in the batch.

    Per anchor: mean over its positives of d^2 + mean over its negatives of max(0, margin - d)^2,
    with d the Euclidean distance between unit vectors (0..2). Positives and negatives are averaged
    separately because a P x K batch holds (P-1)K negatives for every K-1 positives; summing them
    would drown the pull of the positives. The default margin 1.0 asks negatives to have cosine
    similarity below 0.5.
    """

    def __init__(self, margin: float = 1.0, name: str = "contrastive", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.margin = float(margin)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        sim = _similarities(y_pred)
        positives, negatives = _pair_masks(y_true, ops.shape(sim)[0])
        dist_sq = ops.maximum(2.0 - 2.0 * sim, 0.0)
        dist = ops.sqrt(dist_sq + 1e-12)
        neg_term = ops.square(ops.relu(self.margin - dist))
        return _masked_mean(dist_sq, positives) + _masked_mean(neg_term, negatives)

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        config.update({"margin": self.margin})
        return config


@keras.saving.register_keras_serializable(package="lookalike")
class MultiSimilarityLoss(keras.losses.Loss):
    """Multi-similarity loss with its pair mining (Wang et al., CVPR 2019).

    A positive pair is kept if its similarity is below the hardest negative's + ``epsilon``; a
    negative pair if above the easiest positive's - ``epsilon``. Kept pairs are weighted by
    soft-plus terms around the similarity threshold ``lam``.
    """

    def __init__(
        self,
        alpha: float = 2.0,
        beta: float = 50.0,
        lam: float = 0.5,
        epsilon: float = 0.1,
        name: str = "multi_similarity",
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, **kwargs)
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.lam = float(lam)
        self.epsilon = float(epsilon)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        sim = _similarities(y_pred)
        positives, negatives = _pair_masks(y_true, ops.shape(sim)[0])
        big = 4.0  # outside the cosine range, so masked entries never win a max/min
        hardest_neg = ops.max(sim * negatives - big * (1.0 - negatives), axis=1, keepdims=True)
        easiest_pos = ops.min(sim * positives + big * (1.0 - positives), axis=1, keepdims=True)
        pos_kept = positives * ops.cast(ops.less(sim - self.epsilon, hardest_neg), "float32")
        neg_kept = negatives * ops.cast(ops.greater(sim + self.epsilon, easiest_pos), "float32")
        pos_sum = ops.sum(ops.exp(-self.alpha * (sim - self.lam)) * pos_kept, axis=1)
        neg_sum = ops.sum(ops.exp(self.beta * (sim - self.lam)) * neg_kept, axis=1)
        return ops.log1p(pos_sum) / self.alpha + ops.log1p(neg_sum) / self.beta

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        config.update({"alpha": self.alpha, "beta": self.beta, "lam": self.lam, "epsilon": self.epsilon})
        return config


@keras.saving.register_keras_serializable(package="lookalike")
class SupervisedContrastiveLoss(keras.losses.Loss):
    """Supervised contrastive loss (Khosla et al., NeurIPS 2020), the "L_out" form.

    Per anchor: -mean over positives p of log( exp(s_ap/T) / sum_{b != a} exp(s_ab/T) ).
    """

    def __init__(self, temperature: float = 0.1, name: str = "supervised_contrastive", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.temperature = float(temperature)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        sim = _similarities(y_pred)
        n = ops.shape(sim)[0]
        positives, _ = _pair_masks(y_true, n)
        logits = sim / self.temperature
        not_self = 1.0 - ops.eye(n, dtype="float32")
        # Subtracting the row max changes nothing mathematically and keeps exp() finite.
        logits = logits - ops.stop_gradient(ops.max(logits, axis=1, keepdims=True))
        log_denominator = ops.log(ops.sum(ops.exp(logits) * not_self, axis=1, keepdims=True))
        log_prob = logits - log_denominator
        return -_masked_mean(log_prob, positives)

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        config.update({"temperature": self.temperature})
        return config


@keras.saving.register_keras_serializable(package="lookalike")
class ProxyAnchorLoss(keras.losses.Loss):
    """Proxy-Anchor loss (Kim et al., CVPR 2020) on similarities to class proxies.

    Unlike the losses above, ``y_pred`` is [B, C]: each embedding's cosine similarity to every
    product's proxy (see ml.proxies.ProxySimilarity). Each proxy is an anchor: it pulls the batch's
    images of its product (over the proxies that have any) and pushes every other image, with the
    soft-plus over the sum weighting hard examples most:

        1/|P+| sum_{p in P+} log(1 + sum_{x in X_p+} exp(-alpha (s(x,p) - delta)))
      + 1/|P|  sum_{p in P}  log(1 + sum_{x in X_p-} exp( alpha (s(x,p) + delta)))

    The value is one number for the batch; it is returned once per sample so the usual mean applies.
    """

    uses_proxies = True

    def __init__(
        self, alpha: float = 32.0, delta: float = 0.1, name: str = "proxy_anchor", **kwargs: Any
    ) -> None:
        super().__init__(name=name, **kwargs)
        self.alpha = float(alpha)
        self.delta = float(delta)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        sim = ops.cast(y_pred, "float32")
        num_classes = ops.shape(sim)[1]
        labels = ops.reshape(ops.cast(y_true, "int32"), (-1,))
        onehot = ops.one_hot(labels, num_classes, dtype="float32")
        pos_sum = ops.sum(ops.exp(-self.alpha * (sim - self.delta)) * onehot, axis=0)
        neg_sum = ops.sum(ops.exp(self.alpha * (sim + self.delta)) * (1.0 - onehot), axis=0)
        has_pos = ops.cast(ops.greater(ops.sum(onehot, axis=0), 0.0), "float32")
        pos_term = ops.sum(ops.log1p(pos_sum) * has_pos) / ops.maximum(ops.sum(has_pos), 1.0)
        neg_term = ops.sum(ops.log1p(neg_sum)) / ops.cast(num_classes, "float32")
        return ops.ones_like(ops.cast(labels, "float32")) * (pos_term + neg_term)

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        config.update({"alpha": self.alpha, "delta": self.delta})
        return config


LOSSES: dict[str, type[keras.losses.Loss]] = {
    "contrastive": ContrastiveLoss,
    "multi_similarity": MultiSimilarityLoss,
    "supcon": SupervisedContrastiveLoss,
    "proxy_anchor": ProxyAnchorLoss,
}


def uses_proxies(name: str) -> bool:
    """Whether the loss compares embeddings with class proxies ([B, C] input) rather than each other."""
    return bool(getattr(LOSSES.get(name), "uses_proxies", False))


def get_loss(name: str, **kwargs: Any) -> keras.losses.Loss:
    try:
        cls = LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; choose one of: {', '.join(sorted(LOSSES))}") from None
    return cls(**kwargs)
