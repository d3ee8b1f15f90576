"""Image-level transforms of the IP-CLIP scenarios: watermark, strong_style, auth_mixture."""
import pickle
import random

import numpy as np
import pytest
import torch
from PIL import Image

from dassl.config import get_cfg_default
from dassl.data import DataManager
from dassl.data.transforms import PRE_TRANSFORM_REGISTRY, build_pre_transform
from dassl.errors import ConfigError
from trainers.config import extend_cfg
from trainers.ipclip.transforms.auth_mixture import AUTH_MIX_CASES, auth_mixture
from trainers.ipclip.transforms.strong_style import STRONG_STYLE_OPS, random_conv, strong_style
from trainers.ipclip.transforms.watermark import (
    WATERMARK_PATTERNS,
    apply_watermark,
    watermark,
    watermark_mask,
)


def project_cfg():
    """The engine defaults with the project's keys (the scenario transforms' INPUT.* keys are project keys)."""
    return extend_cfg(get_cfg_default())


def noise_image(width=24, height=20, mode="RGB", seed=0, levels=(0, 255)):
    """Random pixels taking only `levels` (so a grey or a fill colour is recognisable)."""
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    pixels = rng.choice(np.array(levels, dtype=np.uint8), size=(height, width, channels))
    return Image.fromarray(pixels[..., 0] if channels == 1 else pixels)


def seed_all(seed):
    random.seed(seed)
    torch.manual_seed(seed)


def cfg_with(**overrides):
    """Default config with INPUT.<NODE>.<KEY> overrides given as NODE__KEY=value."""
    cfg = project_cfg()
    for name, value in overrides.items():
        node, key = name.split("__")
        setattr(getattr(cfg.INPUT, node), key, value)
    return cfg


# ---------------------------------------------------------------- watermark


def test_default_grid_covers_three_quarters_in_white_and_keeps_the_rest():
    img = noise_image(24, 20, levels=(0, 100))
    marked = watermark(project_cfg())(img)
    assert marked.size == img.size and marked.mode == "RGB"
    before, after = np.asarray(img), np.asarray(marked)
    white = np.all(after == 255, axis=-1)
    assert white.mean() == 0.75
    rows, cols = np.nonzero(white)
    assert np.all((rows % 2 == 0) | (cols % 2 == 0))  # even row or even column
    assert np.array_equal(after[~white], before[~white])  # the other pixels are untouched
    assert np.array_equal(np.asarray(img), before)  # the input is not edited in place


def test_watermark_is_deterministic_and_the_same_on_every_image():
    mark = watermark(project_cfg())
    a, b = noise_image(seed=1, levels=(0, 9)), noise_image(seed=2, levels=(0, 9))
    assert np.array_equal(np.asarray(mark(a)), np.asarray(mark(a)))
    white_a = np.all(np.asarray(mark(a)) == 255, axis=-1)
    white_b = np.all(np.asarray(mark(b)) == 255, axis=-1)
    assert np.array_equal(white_a, white_b)


def _on_pattern(pattern, i, j, height, width, period):
    """Whether pixel (i, j) is marked, written out per pattern."""
    if pattern == "frame":
        return min(i, height - 1 - i) < period or min(j, width - 1 - j) < period
    return i % period == 0 or (pattern == "grid" and j % period == 0)


@pytest.mark.parametrize("pattern", sorted(WATERMARK_PATTERNS))
@pytest.mark.parametrize("period", [1, 2, 3])
def test_pattern_masks_match_their_definition(pattern, period):
    height, width = 7, 5
    mask = watermark_mask(pattern, height, width, period)
    assert mask.shape == (height, width) and mask.dtype == bool
    for i in range(height):
        for j in range(width):
            assert mask[i, j] == _on_pattern(pattern, i, j, height, width, period), (i, j)


def test_frame_leaves_the_middle_and_an_offset_insets_it():
    mask = watermark_mask("frame", 8, 9, 2)
    assert mask[:2].all() and mask[-2:].all() and mask[:, :2].all() and mask[:, -2:].all()
    assert not mask[2:-2, 2:-2].any()
    inset = watermark_mask("frame", 8, 9, 1, offset=(1, 2))
    assert not inset[0].any() and not inset[-1].any() and not inset[:, :2].any() and not inset[:, -2:].any()
    assert inset[1, 2:-2].all() and inset[1:-1, 2].all() and not inset[2:-2, 3:-3].any()


def test_joined_patterns_paint_their_union_and_unknown_parts_are_refused():
    both = watermark_mask("stripes+frame", 8, 9, 2)
    assert np.array_equal(both, watermark_mask("stripes", 8, 9, 2) | watermark_mask("frame", 8, 9, 2))
    assert np.array_equal(watermark_mask("stripes+grid", 8, 9, 3), watermark_mask("grid", 8, 9, 3))
    with pytest.raises(ConfigError, match="stripes\\+frame"):
        watermark_mask("stripes+ring", 8, 9, 2)


@pytest.mark.parametrize("mode", ["L", "RGBA"])
def test_watermark_keeps_mode_and_alpha(mode):
    img = noise_image(10, 8, mode=mode, levels=(0, 50))
    marked = apply_watermark(img, "grid", 2, (255, 255, 255))
    assert marked.mode == mode and marked.size == img.size
    mask = watermark_mask("grid", 8, 10, 2)
    after = np.asarray(marked)
    if mode == "L":
        assert np.all(after[mask] == 255) and np.array_equal(after[~mask], np.asarray(img)[~mask])
    else:
        assert np.all(after[mask][:, :3] == 255)
        assert np.array_equal(after[..., 3], np.asarray(img)[..., 3])


def test_watermark_colour_and_other_pattern_from_config():
    cfg = cfg_with(WATERMARK__PATTERN="stripes", WATERMARK__PERIOD=3, WATERMARK__COLOR=(10, 200, 30))
    img = noise_image(9, 9, levels=(0, 255))
    after = np.asarray(watermark(cfg)(img))
    assert np.all(after[::3] == (10, 200, 30))
    assert np.array_equal(after[1::3], np.asarray(img)[1::3])


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_faint_watermark_blends_only_the_marked_pixels(mode):
    cfg = cfg_with(WATERMARK__PATTERN="stripes", WATERMARK__PERIOD=2, WATERMARK__ALPHA=0.25)
    img = noise_image(6, 6, mode=mode, levels=(0, 200))
    before = np.asarray(img).astype(np.float64)
    after = np.asarray(watermark(cfg)(img)).astype(np.float64)
    # Marked rows move a quarter of the way to white (rounded); the others are untouched.
    assert np.abs(after[::2] - (0.75 * before[::2] + 0.25 * 255)).max() <= 0.5
    assert np.array_equal(after[1::2], before[1::2])
    opaque = np.asarray(watermark(cfg_with(WATERMARK__PATTERN="stripes", WATERMARK__PERIOD=2))(img))
    assert np.all(opaque[::2] == 255)


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("WATERMARK__ALPHA", 0.0, r"ALPHA must be a number in \(0, 1\]"),
        ("WATERMARK__ALPHA", 1.5, r"ALPHA must be a number in \(0, 1\]"),
        ("WATERMARK__PATTERN", "dots", r"PATTERN \"dots\".*\['frame', 'grid', 'stripes'\]"),
        ("WATERMARK__PERIOD", 0, "PERIOD must be an integer >= 1"),
        ("WATERMARK__COLOR", (255, 255), r"COLOR must be 3 integers in \[0, 255\]"),
        ("WATERMARK__COLOR", (0, 0, 256), r"COLOR must be 3 integers"),
    ],
)
def test_bad_watermark_settings_name_the_key(key, value, message):
    with pytest.raises(ValueError, match="INPUT.WATERMARK." + message):
        watermark(cfg_with(**{key: value}))


def test_watermark_through_build_pre_transform():
    cfg = project_cfg()
    pre = build_pre_transform(["watermark"], cfg)
    img = noise_image(levels=(0, 100))
    assert np.array_equal(np.asarray(pre(img)), np.asarray(apply_watermark(img)))
    assert {"watermark", "strong_style", "auth_mixture"} <= set(PRE_TRANSFORM_REGISTRY.registered_names())


# ---------------------------------------------------------------- strong_style


def test_strong_style_has_ten_ops():
    assert len(STRONG_STYLE_OPS) == 10


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_strong_style_keeps_size_and_mode_and_changes_the_image(mode):
    style = strong_style(project_cfg())
    img = noise_image(30, 26, mode=mode, levels=(0, 60, 200, 255))
    seed_all(0)
    for _ in range(5):
        out = style(img)
        assert out.size == img.size and out.mode == mode
        pixels = np.asarray(out)
        assert pixels.dtype == np.uint8 and pixels.shape == np.asarray(img).shape
        assert not np.array_equal(pixels, np.asarray(img))


def test_strong_style_is_reproducible_under_seeding():
    style = strong_style(project_cfg())
    img = noise_image(32, 32, levels=(0, 60, 200, 255))

    def run(seed):
        seed_all(seed)
        return [np.asarray(style(img)) for _ in range(3)]

    first, again, other = run(3), run(3), run(4)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))
    assert not np.array_equal(first[0], first[1])  # a fresh draw per call


def test_cutout_is_a_grey_square_of_at_most_the_configured_side():
    cfg = cfg_with(STRONG_STYLE__PROB=0.0, STRONG_STYLE__CUTOUT_SIZE=6)
    style = strong_style(cfg)
    img = noise_image(20, 20, levels=(0, 255))
    seed_all(0)
    for _ in range(20):
        after = np.asarray(style(img))
        changed = np.any(after != np.asarray(img), axis=-1)
        grey = np.all(after == 127, axis=-1)
        assert np.array_equal(changed, grey) and grey.any()
        rows, cols = np.nonzero(grey)
        assert rows.max() - rows.min() < 6 and cols.max() - cols.min() < 6
        assert grey.sum() == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)  # a rectangle


def test_strong_style_without_ops_or_cutout_is_the_identity():
    style = strong_style(cfg_with(STRONG_STYLE__NUM_OPS=0, STRONG_STYLE__CUTOUT_SIZE=0))
    img = noise_image()
    assert np.array_equal(np.asarray(style(img)), np.asarray(img))


def test_random_conv_blends_a_filtered_image_by_its_strength():
    img = noise_image(24, 20, levels=(0, 60, 200, 255))
    seed_all(0)
    assert np.array_equal(np.asarray(random_conv(img, 0.0, 3)), np.asarray(img))
    for side in (1, 3, 7):
        out = random_conv(img, 1.0, side)
        assert out.size == img.size and out.mode == "RGB"
        assert not np.array_equal(np.asarray(out), np.asarray(img))
        # brought back to the input's overall brightness (up to the clipping to [0, 255])
        assert abs(np.asarray(out).mean() - np.asarray(img).mean()) < 40


def test_random_conv_takes_a_filter_wider_than_the_image():
    img = noise_image(3, 2, levels=(0, 255))
    seed_all(0)
    assert random_conv(img, 1.0, 7).size == img.size


def test_random_conv_of_side_one_only_remaps_colours():
    """A 1 x 1 filter mixes each pixel's channels alone: pixels of one colour stay one colour."""
    img = noise_image(16, 16, levels=(0, 255))
    seed_all(1)
    out = np.asarray(random_conv(img, 1.0, 1)).reshape(-1, 3)
    colours = np.asarray(img).reshape(-1, 3)
    for colour in np.unique(colours, axis=0):
        assert len(np.unique(out[(colours == colour).all(axis=1)], axis=0)) == 1


def test_strong_style_random_conv_is_off_by_default_and_changes_the_image_when_on():
    bare = dict(STRONG_STYLE__NUM_OPS=0, STRONG_STYLE__CUTOUT_SIZE=0)
    img = noise_image(levels=(0, 60, 200, 255))
    assert project_cfg().INPUT.STRONG_STYLE.RANDOM_CONV_PROB == 0.0
    on = strong_style(cfg_with(STRONG_STYLE__RANDOM_CONV_PROB=1.0, **bare))
    seed_all(0)
    changed = [not np.array_equal(np.asarray(on(img)), np.asarray(img)) for _ in range(5)]
    assert sum(changed) >= 4  # the strength is drawn in [0, MAX_MAGNITUDE]


def test_random_conv_needs_our_variant():
    cfg = cfg_with(STRONG_STYLE__RANDOM_CONV_PROB=0.5, STRONG_STYLE__VARIANT="release")
    with pytest.raises(ValueError, match="RANDOM_CONV_PROB > 0 needs INPUT.STRONG_STYLE.VARIANT 'ours'"):
        strong_style(cfg)


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("STRONG_STYLE__RANDOM_CONV_PROB", 2.0, r"RANDOM_CONV_PROB must be a number in \[0, 1\]"),
        ("STRONG_STYLE__RANDOM_CONV_KERNELS", (2, 3), "RANDOM_CONV_KERNELS must be a non-empty list of odd"),
        ("STRONG_STYLE__RANDOM_CONV_KERNELS", (), "RANDOM_CONV_KERNELS must be a non-empty list of odd"),
        ("STRONG_STYLE__NUM_OPS", 11, r"NUM_OPS must be an integer in \[0, 10\]"),
        ("STRONG_STYLE__PROB", 1.5, r"PROB must be a number in \[0, 1\]"),
        ("STRONG_STYLE__MAX_MAGNITUDE", -0.1, r"MAX_MAGNITUDE must be a number in \[0, 1\]"),
        ("STRONG_STYLE__CUTOUT_SIZE", -1, "CUTOUT_SIZE must be an integer >= 0"),
        ("STRONG_STYLE__CUTOUT_FILL", (1, 2), "CUTOUT_FILL must be 3 integers"),
    ],
)
def test_bad_strong_style_settings_name_the_key(key, value, message):
    with pytest.raises(ValueError, match="INPUT.STRONG_STYLE." + message):
        strong_style(cfg_with(**{key: value}))


# ---------------------------------------------------------------- auth_mixture


@pytest.mark.parametrize("rates", [(1 / 3, 1 / 3, 1 / 3), (0.5, 0.3, 0.2), (0.0, 0.25, 0.75)])
def test_mixture_cases_appear_at_their_rates(rates):
    mix = auth_mixture(cfg_with(AUTH_MIX__RATES=rates))
    seed_all(0)
    draws = [mix.draw_case() for _ in range(3000)]
    freq = np.bincount(draws, minlength=len(AUTH_MIX_CASES)) / len(draws)
    assert np.allclose(freq, rates, atol=0.03), freq
    if rates[0] == 0:
        assert freq[0] == 0


def test_mixture_draws_a_new_case_for_every_image():
    cfg = cfg_with(STRONG_STYLE__PROB=0.0)  # strong_style = cutout only: cases are recognisable
    mix = auth_mixture(cfg)
    img = noise_image(12, 12, levels=(0, 90))
    seed_all(0)
    seen = set()
    for _ in range(40):
        after = np.asarray(mix(img))
        has_mark = bool(np.all(np.isin(after[::2, ::2], (255, 127))))  # the cutout may cover some
        has_cutout = bool(np.any(np.all(after == 127, axis=-1)))
        seen.add((has_mark, has_cutout))
    assert seen == {(True, True), (False, True), (False, False)}


def test_mixture_cases_compose_the_watermark_and_strong_style():
    cfg = cfg_with(STRONG_STYLE__PROB=0.0, STRONG_STYLE__CUTOUT_SIZE=0)  # strong_style = identity
    mix = auth_mixture(cfg)
    img = noise_image(levels=(0, 90))
    assert np.array_equal(np.asarray(mix.apply_case(img, 0)), np.asarray(apply_watermark(img)))
    assert np.array_equal(np.asarray(mix.apply_case(img, 1)), np.asarray(img))
    assert mix.apply_case(img, 2) is img
    with pytest.raises(ValueError, match="case must be an index"):
        mix.apply_case(img, 3)
    only_marked = auth_mixture(cfg_with(AUTH_MIX__RATES=(1.0, 0.0, 0.0), STRONG_STYLE__PROB=0.0,
                                        STRONG_STYLE__CUTOUT_SIZE=0))
    marked = np.asarray(apply_watermark(img))
    assert all(np.array_equal(np.asarray(only_marked(img)), marked) for _ in range(5))


def test_key_after_style_paints_an_intact_key_over_the_new_style():
    # strong_style = a grey square larger than the image: it hides a key painted before it
    whole_grey = dict(STRONG_STYLE__PROB=0.0, STRONG_STYLE__CUTOUT_SIZE=100)
    img = noise_image(levels=(0, 90))
    grey = Image.new("RGB", img.size, (127, 127, 127))
    key_first = auth_mixture(cfg_with(**whole_grey))
    key_last = auth_mixture(cfg_with(**whole_grey, AUTH_MIX__KEY_AFTER_STYLE=1.0))
    assert np.array_equal(np.asarray(key_first.apply_case(img, 0)), np.asarray(grey))
    assert np.array_equal(np.asarray(key_last.apply_case(img, 0)), np.asarray(apply_watermark(grey)))
    # the other cases do not carry the key either way
    assert np.array_equal(np.asarray(key_last.apply_case(img, 1)), np.asarray(grey))
    assert key_last.apply_case(img, 2) is img


def test_key_after_style_is_a_share_of_the_keyed_case():
    mix = auth_mixture(cfg_with(STRONG_STYLE__PROB=0.0, STRONG_STYLE__CUTOUT_SIZE=100,
                                AUTH_MIX__KEY_AFTER_STYLE=0.3))
    img = noise_image(levels=(0, 90))
    seed_all(0)
    keyed = [bool(np.any(np.asarray(mix.apply_case(img, 0)) != 127)) for _ in range(1000)]
    assert np.mean(keyed) == pytest.approx(0.3, abs=0.05)


@pytest.mark.parametrize("share", [-0.1, 1.5, "half", True])
def test_bad_key_after_style_is_refused(share):
    with pytest.raises(ConfigError, match=r"INPUT.AUTH_MIX.KEY_AFTER_STYLE must be a number in \[0, 1\]"):
        auth_mixture(cfg_with(AUTH_MIX__KEY_AFTER_STYLE=share))


@pytest.mark.parametrize("rates", [(0.5, 0.5), (0.6, 0.6, -0.2), (0.5, 0.2, 0.2), ("a", 0.5, 0.5), 1.0])
def test_bad_rates_are_refused(rates):
    with pytest.raises(ValueError, match=r"INPUT.AUTH_MIX.RATES must be 3 non-negative numbers summing to 1"):
        auth_mixture(cfg_with(AUTH_MIX__RATES=rates))


def test_rates_merge_from_the_command_line():
    cfg = project_cfg()
    cfg.merge_from_list(["INPUT.AUTH_MIX.RATES", "(0.5, 0.25, 0.25)", "INPUT.WATERMARK.COLOR", "[0, 0, 0]"])
    assert auth_mixture(cfg).rates == (0.5, 0.25, 0.25)
    assert watermark(cfg).color == (0, 0, 0)


# ---------------------------------------------------------------- workers and data pipeline


@pytest.mark.parametrize("name", ["watermark", "strong_style", "auth_mixture"])
def test_pre_transforms_pickle_and_behave_the_same(name):
    pre = build_pre_transform([name], project_cfg())
    copy = pickle.loads(pickle.dumps(pre))
    img = noise_image(levels=(0, 60, 200, 255))
    outs = []
    for fn in (pre, copy):
        seed_all(5)
        outs.append(np.asarray(fn(img)))
    assert np.array_equal(*outs)


def test_watermarked_test_set_through_the_data_manager(tmp_path):
    for d, domain in enumerate(("art", "photo")):
        for c, cls in enumerate(("bird", "car")):
            folder = tmp_path / domain / cls
            folder.mkdir(parents=True)
            for i in range(5):
                Image.new("RGB", (8, 8), (60 * c, 20 * i, 80 * d)).save(folder / f"{i}.png")
    cfg = project_cfg()
    cfg.VERBOSE = False
    cfg.USE_CUDA = False
    cfg.DATASET.ROOT = str(tmp_path)
    cfg.DATASET.NAME = "DomainFolders"
    cfg.DATASET.SOURCE_DOMAINS = ("art",)
    cfg.DATASET.TARGET_DOMAINS = ("photo",)
    cfg.DATASET.TEST_SETS = ("clean=source", "x=source+watermark")
    cfg.INPUT.SIZE = (8, 8)  # the stored size: the resize keeps every pixel
    cfg.INPUT.TRANSFORMS = ()
    cfg.DATALOADER.NUM_WORKERS = 0
    dm = DataManager(cfg)
    clean = next(iter(dm.test_loaders["clean"]))["img"]
    marked = next(iter(dm.test_loaders["x"]))["img"]
    assert marked.shape == clean.shape
    mask = torch.from_numpy(watermark_mask("grid", 8, 8, 2).copy())
    assert torch.all(marked[:, :, mask] == 1.0)
    assert torch.equal(marked[:, :, ~mask], clean[:, :, ~mask])
    assert clean.max() < 1.0
