"""Pairwise distances between two sets of feature vectors."""
import torch
import torch.nn.functional as F

__all__ = ["compute_distance_matrix", "euclidean_squared_distance", "cosine_distance"]


def _check_pair(input1, input2):
    if input1.dim() != 2 or input2.dim() != 2:
        raise ValueError(
            f"expected two 2-D feature matrices [M, D] and [N, D], got {tuple(input1.shape)} "
            f"and {tuple(input2.shape)}"
        )
    if input1.size(1) != input2.size(1):
        raise ValueError(
            f"feature dimensions differ: {input1.size(1)} vs {input2.size(1)}"
        )


def euclidean_squared_distance(input1, input2):
    """``[M, N]`` matrix of squared Euclidean distances."""
    _check_pair(input1, input2)
    sq1 = input1.pow(2).sum(dim=1, keepdim=True)  # [M, 1]
    sq2 = input2.pow(2).sum(dim=1, keepdim=True).t()  # [1, N]
    # Rounding can push tiny distances below zero.
    return (sq1 + sq2 - 2.0 * input1 @ input2.t()).clamp_min(0.0)


def cosine_distance(input1, input2):
    """``[M, N]`` matrix of ``1 - cosine similarity``."""
    _check_pair(input1, input2)
    return 1.0 - F.normalize(input1, dim=1) @ F.normalize(input2, dim=1).t()


def compute_distance_matrix(input1, input2, metric="euclidean"):
    """Dispatch on `metric`: "euclidean" (squared) or "cosine"."""
    if not isinstance(input1, torch.Tensor) or not isinstance(input2, torch.Tensor):
        raise TypeError("compute_distance_matrix expects two torch tensors")
    if metric == "euclidean":
        return euclidean_squared_distance(input1, input2)
    if metric == "cosine":
        return cosine_distance(input1, input2)
    raise ValueError(f'Unknown distance metric "{metric}"; use "euclidean" or "cosine"')
