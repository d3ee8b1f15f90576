"""`build_transform`: upstream Dassl's train/test pipelines from `INPUT.*`, with its printed lines.

The train pipeline applies the chosen ops in a fixed order, whatever the order of INPUT.TRANSFORMS;
the test pipeline is always resize-shorter-edge -> center crop -> tensor (-> normalize, instance norm).
"""
import torch
import torchvision.transforms as T
from torchvision.transforms import InterpolationMode

from dassl.errors import ConfigError
from dassl.utils import get_most_similar_str_to_a_from_b

from .randaugment import RandAugment2, RandAugmentFixMatch

__all__ = [
    "AVAI_CHOICES",
    "INTERPOLATION_MODES",
    "interpolation_mode",
    "build_transform",
    "Random2DTranslation",
    "InstanceNormalization",
    "Cutout",
    "GaussianNoise",
]

AVAI_CHOICES = [
    "random_flip",
    "random_resized_crop",
    "normalize",
    "instance_norm",
    "random_crop",
    "random_translation",
    "center_crop",  # a no-op in training: the test pipeline always center-crops
    "cutout",
    "imagenet_policy",
    "cifar10_policy",
    "svhn_policy",
    "randaugment",
    "randaugment_fixmatch",
    "randaugment2",
    "gaussian_noise",
    "colorjitter",
    "randomgrayscale",
    "gaussian_blur",
]

INTERPOLATION_MODES = {
    "bilinear": InterpolationMode.BILINEAR,
    "bicubic": InterpolationMode.BICUBIC,
    "nearest": InterpolationMode.NEAREST,
}


class Random2DTranslation:
    """With probability p, enlarge by 1/8 and crop a random H x W window; otherwise resize to H x W."""

    def __init__(self, height, width, p=0.5, interpolation=InterpolationMode.BILINEAR):
        self.height = height
        self.width = width
        self.p = p
        self.interpolation = interpolation

    def __call__(self, img):
        if torch.rand(()).item() > self.p:
            return T.functional.resize(img, [self.height, self.width], self.interpolation)
        new_height, new_width = round(self.height * 1.125), round(self.width * 1.125)
        img = T.functional.resize(img, [new_height, new_width], self.interpolation)
        top = torch.randint(new_height - self.height + 1, ()).item()
        left = torch.randint(new_width - self.width + 1, ()).item()
        return T.functional.crop(img, top, left, self.height, self.width)

    def __repr__(self):
        return f"{type(self).__name__}(height={self.height}, width={self.width}, p={self.p})"


class InstanceNormalization:
    """Standardise each channel of one image tensor [C, H, W] by its own mean and std."""

    def __init__(self, eps=1e-8):
        self.eps = eps

    def __call__(self, img):
        flat = img.flatten(1)
        mean = flat.mean(1).view(-1, 1, 1)
        std = flat.std(1).view(-1, 1, 1)
        return (img - mean) / (std + self.eps)

    def __repr__(self):
        return f"{type(self).__name__}(eps={self.eps})"


class Cutout:
    """Zero `n_holes` squares of side `length` centred at random pixels of a tensor [C, H, W]."""

    def __init__(self, n_holes=1, length=16):
        self.n_holes = n_holes
        self.length = length

    def __call__(self, img):
        height, width = img.shape[-2:]
        mask = torch.ones(height, width, dtype=img.dtype)
        half = self.length // 2
        for _ in range(self.n_holes):
            y = torch.randint(height, ()).item()
            x = torch.randint(width, ()).item()
            mask[max(y - half, 0) : min(y + half, height), max(x - half, 0) : min(x + half, width)] = 0
        return img * mask

    def __repr__(self):
        return f"{type(self).__name__}(n_holes={self.n_holes}, length={self.length})"


class GaussianNoise:
    """With probability p, add N(mean, std) noise to a tensor."""

    def __init__(self, mean=0.0, std=0.15, p=0.5):
        self.mean = mean
        self.std = std
        self.p = p

    def __call__(self, img):
        if torch.rand(()).item() > self.p:
            return img
        return img + torch.randn_like(img) * self.std + self.mean

    def __repr__(self):
        return f"{type(self).__name__}(mean={self.mean}, std={self.std}, p={self.p})"


def _check_choices(choices):
    for choice in choices:
        if choice not in AVAI_CHOICES:
            raise ConfigError(
                f'Unknown transform "{choice}" in INPUT.TRANSFORMS (did you mean '
                f'"{get_most_similar_str_to_a_from_b(choice, AVAI_CHOICES)}"?); valid choices: {AVAI_CHOICES}.'
            )


def interpolation_mode(cfg):
    """torchvision's mode for INPUT.INTERPOLATION, or a ValueError listing the valid names."""
    name = cfg.INPUT.INTERPOLATION
    if name not in INTERPOLATION_MODES:
        raise ConfigError(
            f'Unknown INPUT.INTERPOLATION "{name}"; valid modes: {list(INTERPOLATION_MODES)}.'
        )
    return INTERPOLATION_MODES[name]


def _input_size(cfg):
    size = tuple(cfg.INPUT.SIZE)
    if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
        raise ConfigError(f"INPUT.SIZE must be two positive integers (height, width), got {cfg.INPUT.SIZE}.")
    return size


def build_transform(cfg, is_train=True, choices=None):
    """Return a torchvision Compose for training or testing (None, with a note, if NO_TRANSFORM)."""
    if cfg.INPUT.NO_TRANSFORM:
        print("Note: no transform is applied!")
        return None
    choices = list(cfg.INPUT.TRANSFORMS if choices is None else choices)
    _check_choices(choices)
    size = _input_size(cfg)
    interpolation = interpolation_mode(cfg)
    normalize = T.Normalize(mean=cfg.INPUT.PIXEL_MEAN, std=cfg.INPUT.PIXEL_STD)
    if is_train:
        return _build_train(cfg, choices, size, interpolation, normalize)
    return _build_test(cfg, choices, size, interpolation, normalize)


def _build_train(cfg, choices, size, interpolation, normalize):
    print("Building transform_train")
    ops = []

    def add(line, op):
        print(f"+ {line}")
        ops.append(op)

    height, width = size
    if "random_crop" not in choices and "random_resized_crop" not in choices:
        add(f"resize to {height}x{width}", T.Resize(size, interpolation=interpolation))
    if "random_translation" in choices:
        add("random translation", Random2DTranslation(height, width))
    if "random_crop" in choices:
        padding = cfg.INPUT.CROP_PADDING
        add(f"random crop (padding = {padding})", T.RandomCrop(size, padding=padding))
    if "random_resized_crop" in choices:
        scale = tuple(cfg.INPUT.RRCROP_SCALE)
        add(
            f"random resized crop (size={size}, scale={scale})",
            T.RandomResizedCrop(size, scale=scale, interpolation=interpolation),
        )
    if "random_flip" in choices:
        add("random flip", T.RandomHorizontalFlip())
    for choice, policy in (
        ("imagenet_policy", T.AutoAugmentPolicy.IMAGENET),
        ("cifar10_policy", T.AutoAugmentPolicy.CIFAR10),
        ("svhn_policy", T.AutoAugmentPolicy.SVHN),
    ):
        if choice in choices:
            add(choice.replace("_", " "), T.AutoAugment(policy))
    n, m = cfg.INPUT.RANDAUGMENT_N, cfg.INPUT.RANDAUGMENT_M
    if "randaugment" in choices:
        add(f"randaugment (n={n}, m={m})", T.RandAugment(num_ops=n, magnitude=m))
    if "randaugment_fixmatch" in choices:
        add(f"randaugment_fixmatch (n={n})", RandAugmentFixMatch(n))
    if "randaugment2" in choices:
        add(f"randaugment2 (n={n})", RandAugment2(n))
    if "colorjitter" in choices:
        b, c, s, h = (cfg.INPUT.COLORJITTER_B, cfg.INPUT.COLORJITTER_C, cfg.INPUT.COLORJITTER_S,
                      cfg.INPUT.COLORJITTER_H)
        add(
            f"color jitter (brightness={b}, contrast={c}, saturation={s}, hue={h})",
            T.ColorJitter(brightness=b, contrast=c, saturation=s, hue=h),
        )
    if "randomgrayscale" in choices:
        add("random gray scale", T.RandomGrayscale(p=cfg.INPUT.RGS_P))
    if "gaussian_blur" in choices:
        kernel = cfg.INPUT.GB_K
        if kernel < 1 or kernel % 2 == 0:
            raise ConfigError(f"INPUT.GB_K (gaussian blur kernel) must be a positive odd integer, got {kernel}.")
        add(f"gaussian blur (kernel={kernel})", T.RandomApply([T.GaussianBlur(kernel)], p=cfg.INPUT.GB_P))
    add("to torch tensor of range [0, 1]", T.ToTensor())
    if "cutout" in choices:
        n_holes, length = cfg.INPUT.CUTOUT_N, cfg.INPUT.CUTOUT_LEN
        add(f"cutout (n_holes={n_holes}, length={length})", Cutout(n_holes, length))
    if "normalize" in choices:
        add(f"normalization (mean={cfg.INPUT.PIXEL_MEAN}, std={cfg.INPUT.PIXEL_STD})", normalize)
    if "gaussian_noise" in choices:
        mean, std = cfg.INPUT.GN_MEAN, cfg.INPUT.GN_STD
        add(f"gaussian noise (mean={mean}, std={std})", GaussianNoise(mean, std))
    if "instance_norm" in choices:
        add("instance normalization", InstanceNormalization())
    return T.Compose(ops)


def _build_test(cfg, choices, size, interpolation, normalize):
    print("Building transform_test")
    ops = []

    def add(line, op):
        print(f"+ {line}")
        ops.append(op)

    height, width = size
    add(f"resize the smaller edge to {max(size)}", T.Resize(max(size), interpolation=interpolation))
    add(f"{height}x{width} center crop", T.CenterCrop(size))
    add("to torch tensor of range [0, 1]", T.ToTensor())
    if "normalize" in choices:
        add(f"normalization (mean={cfg.INPUT.PIXEL_MEAN}, std={cfg.INPUT.PIXEL_STD})", normalize)
    if "instance_norm" in choices:
        add("instance normalization", InstanceNormalization())
    return T.Compose(ops)
