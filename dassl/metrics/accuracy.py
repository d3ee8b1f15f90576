"""Top-k classification accuracy, in percent."""
import torch

__all__ = ["compute_accuracy"]


def compute_accuracy(output, target, topk=(1,)):
    """Return ``[acc@k for k in topk]`` as 1-element tensors holding percentages.

    `output` is ``[N, C]`` logits (or a tuple/list whose first element is), `target` ``[N]`` labels.
    """
    if isinstance(output, (tuple, list)):
        output = output[0]
    if output.dim() != 2:
        raise ValueError(f"compute_accuracy expects output of shape [N, num_classes], got {tuple(output.shape)}")
    target = target.reshape(-1)
    if target.numel() != output.size(0):
        raise ValueError(
            f"compute_accuracy got {output.size(0)} predictions but {target.numel()} labels; "
            "pass one label per row of output"
        )
    if target.numel() == 0:
        raise ValueError("compute_accuracy got an empty batch")
    maxk = max(topk)
    if maxk > output.size(1):
        raise ValueError(f"top-{maxk} accuracy needs at least {maxk} classes, output has {output.size(1)}")

    pred = output.topk(maxk, dim=1, largest=True, sorted=True).indices.t()  # [maxk, N]
    correct = pred.eq(target.to(pred.device).view(1, -1))
    batch_size = target.numel()
    return [correct[:k].any(dim=0).sum(0, keepdim=True).float() * (100.0 / batch_size) for k in topk]
