"""build_transform: upstream's printed lines, fixed op order, every choice runs, bad input."""
import pytest
import torch
import torchvision.transforms as T
from PIL import Image

from dassl.config import get_cfg_default
from dassl.data.transforms import INTERPOLATION_MODES, build_transform
from dassl.data.transforms.randaugment import AUGMENT_OPS, RandAugment2, RandAugmentFixMatch, apply_op
from dassl.data.transforms.transforms import (
    AVAI_CHOICES,
    Cutout,
    GaussianNoise,
    InstanceNormalization,
    Random2DTranslation,
)

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def make_cfg(transforms, size=(32, 32), **inputs):
    cfg = get_cfg_default()
    cfg.INPUT.SIZE = size
    cfg.INPUT.TRANSFORMS = tuple(transforms)
    cfg.INPUT.INTERPOLATION = "bicubic"
    cfg.INPUT.PIXEL_MEAN = CLIP_MEAN
    cfg.INPUT.PIXEL_STD = CLIP_STD
    for key, value in inputs.items():
        setattr(cfg.INPUT, key, value)
    return cfg


def image(w=48, h=40):
    torch.manual_seed(0)
    return T.functional.to_pil_image(torch.rand(3, h, w))


def test_printed_lines_match_upstream(capsys):
    cfg = make_cfg(["random_resized_crop", "random_flip", "normalize"])
    build_transform(cfg, is_train=True)
    build_transform(cfg, is_train=False)
    assert capsys.readouterr().out.splitlines() == [
        "Building transform_train",
        "+ random resized crop (size=(32, 32), scale=(0.08, 1.0))",
        "+ random flip",
        "+ to torch tensor of range [0, 1]",
        f"+ normalization (mean={CLIP_MEAN}, std={CLIP_STD})",
        "Building transform_test",
        "+ resize the smaller edge to 32",
        "+ 32x32 center crop",
        "+ to torch tensor of range [0, 1]",
        f"+ normalization (mean={CLIP_MEAN}, std={CLIP_STD})",
    ]


def test_every_choice_prints_its_line_in_fixed_order(capsys):
    everything = list(reversed(AVAI_CHOICES))
    cfg = make_cfg(everything, GB_K=3)
    build_transform(cfg, is_train=True)
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "Building transform_train",
        "+ random translation",
        "+ random crop (padding = 4)",
        "+ random resized crop (size=(32, 32), scale=(0.08, 1.0))",
        "+ random flip",
        "+ imagenet policy",
        "+ cifar10 policy",
        "+ svhn policy",
        "+ randaugment (n=2, m=10)",
        "+ randaugment_fixmatch (n=2)",
        "+ randaugment2 (n=2)",
        "+ color jitter (brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1)",
        "+ random gray scale",
        "+ gaussian blur (kernel=3)",
        "+ to torch tensor of range [0, 1]",
        "+ cutout (n_holes=1, length=16)",
        f"+ normalization (mean={CLIP_MEAN}, std={CLIP_STD})",
        "+ gaussian noise (mean=0.0, std=0.15)",
        "+ instance normalization",
    ]


@pytest.mark.parametrize("choice", AVAI_CHOICES)
def test_each_choice_gives_a_tensor_of_input_size(choice):
    cfg = make_cfg([choice], size=(24, 28), GB_K=3)
    out = build_transform(cfg, is_train=True)(image())
    assert isinstance(out, torch.Tensor) and out.shape == (3, 24, 28) and torch.isfinite(out).all()


def test_plain_train_resizes_and_test_center_crops(capsys):
    cfg = make_cfg([], size=(16, 20))
    train = build_transform(cfg, is_train=True)
    assert "+ resize to 16x20" in capsys.readouterr().out
    assert train(image()).shape == (3, 16, 20)
    img = Image.new("RGB", (60, 30), (255, 0, 0))
    img.paste((0, 0, 255), (0, 0, 10, 30))  # a blue strip the center crop removes
    test = build_transform(cfg, is_train=False)(img)
    assert test.shape == (3, 16, 20) and test[2].max() < 0.05 and test[0].min() > 0.95


def test_no_transform_returns_none(capsys):
    cfg = make_cfg(["normalize"], NO_TRANSFORM=True)
    assert build_transform(cfg, is_train=True) is None
    assert "Note: no transform is applied!" in capsys.readouterr().out


def test_bad_choice_and_interpolation_are_explained():
    with pytest.raises(ValueError, match=r'"random_flp".*did you mean "random_flip"'):
        build_transform(make_cfg(["random_flp"]))
    cfg = make_cfg([])
    cfg.INPUT.INTERPOLATION = "lanczos"
    with pytest.raises(ValueError, match="bilinear"):
        build_transform(cfg)
    assert set(INTERPOLATION_MODES) == {"bilinear", "bicubic", "nearest"}


def test_cutout_instance_norm_noise_translation():
    torch.manual_seed(0)
    img = torch.ones(3, 20, 20)
    holed = Cutout(n_holes=1, length=6)(img)
    assert 0 < (holed == 0).sum() <= 3 * 36
    normed = InstanceNormalization()(torch.rand(3, 10, 10) * 5 + 2)
    assert torch.allclose(normed.flatten(1).mean(1), torch.zeros(3), atol=1e-5)
    assert torch.allclose(normed.flatten(1).std(1), torch.ones(3), atol=1e-4)
    noise = GaussianNoise(0.0, 0.15, p=1.0)
    assert not torch.equal(noise(img), img)
    assert torch.equal(GaussianNoise(0.0, 0.15, p=0.0)(img), img)
    for _ in range(5):
        assert Random2DTranslation(12, 16)(image()).size == (16, 12)


@pytest.mark.parametrize("name", sorted(AUGMENT_OPS))
def test_augment_ops_keep_size_and_mode(name):
    for strength in (0.0, 0.5, 1.0):
        out = apply_op(image(), name, strength)
        assert out.size == (48, 40) and out.mode == "RGB"
    with pytest.raises(ValueError):
        apply_op(image(), name, 1.5)


def test_random_strength_augmenters_are_reproducible():
    img = image()
    torch.manual_seed(3)
    first = [T.functional.pil_to_tensor(RandAugmentFixMatch(3)(img)) for _ in range(3)]
    torch.manual_seed(3)
    second = [T.functional.pil_to_tensor(RandAugmentFixMatch(3)(img)) for _ in range(3)]
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    assert any(not torch.equal(a, T.functional.pil_to_tensor(img)) for a in first)
    assert RandAugment2(2, p=0.0)(img) is img
