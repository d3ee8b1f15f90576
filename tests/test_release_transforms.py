"""The release's strong augmentation (INPUT.STRONG_STYLE.VARIANT release) and its sticky
authorization mixture (INPUT.AUTH_MIX.STICKY), and how a training stream chains them."""
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

import trainers.ipclip.transforms.randaugment_opmatch as opmatch
from dassl.config import get_cfg_default
from dassl.data.transforms import build_pre_transform
from dassl.data.transforms.pre_transforms import training_transforms
from trainers.config import extend_cfg
from trainers.ipclip.transforms.auth_mixture import CLEAN, STRONG, WATERMARK_STRONG, auth_mixture
from trainers.ipclip.transforms.strong_style import strong_style


def project_cfg():
    """The engine defaults with the project's keys (the scenario transforms' INPUT.* keys are project keys)."""
    return extend_cfg(get_cfg_default())


def release_cfg(**input_overrides):
    cfg = project_cfg()
    cfg.INPUT.SIZE = (40, 40)
    cfg.INPUT.STRONG_STYLE.VARIANT = "release"
    cfg.INPUT.AUTH_MIX.RATES = (0.4, 0.4, 0.2)
    for name, value in input_overrides.items():
        node, key = name.split("__")
        setattr(getattr(cfg.INPUT, node), key, value)
    return cfg


def photo(width=64, height=48, seed=0):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def test_release_table_has_fourteen_ops_with_identity_and_weakening_enhancements():
    assert len(opmatch.OPMATCH_OPS) == 14 and "identity" in opmatch.OPMATCH_OPS
    grey = Image.new("RGB", (8, 8), (200, 100, 50))
    for level in range(1, opmatch.MAX_LEVEL):
        factor = level * opmatch.ENHANCE_RANGE / opmatch.MAX_LEVEL + opmatch.ENHANCE_OFFSET
        assert 0.14 - 1e-9 <= factor <= 0.86 + 1e-9
        darker = np.asarray(opmatch.OPMATCH_OPS["brightness"](grey, level)).astype(int)
        assert (darker <= np.asarray(grey)).all() and (darker < np.asarray(grey)).any()


def test_release_ops_are_drawn_with_replacement_at_levels_one_to_nine(monkeypatch):
    calls = []

    def recorder(name):
        def op(img, level):
            calls[-1].append((name, level))
            return img
        return op

    monkeypatch.setattr(opmatch, "OPMATCH_OPS", {name: recorder(name) for name in opmatch.OPMATCH_OPS})
    augment = opmatch.RandAugmentOPMatch(num_ops=10, prob=0.5, cutout_size=0, cutout_fill=(127,) * 3)
    torch.manual_seed(0)
    applied = 0
    for _ in range(300):
        calls.append([])
        augment(photo(16, 16))
        applied += len(calls[-1])
    levels = {level for call in calls for _, level in call}
    assert levels == set(range(1, opmatch.MAX_LEVEL))
    assert {name for call in calls for name, _ in call} == set(opmatch.OPMATCH_OPS)
    assert any(len({n for n, _ in call}) < len(call) for call in calls), "never a repeated op"
    assert applied / (300 * 10) == pytest.approx(0.5, abs=0.05)


def test_release_strong_style_crops_to_the_input_size_and_cuts_out_there():
    cfg = release_cfg(STRONG_STYLE__PROB=0.0, STRONG_STYLE__CUTOUT_SIZE=16)
    aug = strong_style(cfg)
    torch.manual_seed(0)
    out = aug(photo())
    assert out.size == (40, 40)
    grey = np.all(np.asarray(out) == 127, axis=-1)
    rows, cols = np.nonzero(grey)
    assert grey.sum() >= 8 * 8 and rows.max() - rows.min() <= 16 and cols.max() - cols.min() <= 16
    with pytest.raises(ValueError, match="VARIANT"):
        strong_style(release_cfg(STRONG_STYLE__VARIANT="paper"))
    strong_style(release_cfg(STRONG_STYLE__NUM_OPS=20))  # with replacement: more ops than the table
    with pytest.raises(ValueError, match="NUM_OPS"):
        strong_style(release_cfg(STRONG_STYLE__VARIANT="ours", STRONG_STYLE__NUM_OPS=20))


def tfm_train(img):
    """Stand-in for the train transform (module-level: pickled like a real one)."""
    return ("train", img.size)


def tfm_test(img):
    return ("test", img.size)


def test_training_stream_skips_the_train_augmentation_after_the_release_variant():
    ours = build_pre_transform(["strong_style"], project_cfg())
    pre, tfm = training_transforms(ours, tfm_train, tfm_test)
    assert pre is ours and tfm is tfm_train
    release = build_pre_transform(["strong_style"], release_cfg())
    pre, tfm = training_transforms(release, tfm_train, tfm_test)
    assert pre is None and tfm(photo()) == ("test", (40, 40))
    pickle.loads(pickle.dumps(tfm))  # data-loader workers receive it


def test_release_mixture_takes_the_train_transform_only_for_clean_images():
    mix = build_pre_transform(["auth_mixture"], release_cfg(STRONG_STYLE__PROB=0.0,
                                                           STRONG_STYLE__CUTOUT_SIZE=0))
    _, pipeline = training_transforms(mix, tfm_train, tfm_test)
    torch.manual_seed(0)
    results = {pipeline(photo()) for _ in range(60)}
    assert results == {("train", (64, 48)), ("test", (40, 40))}


def test_key_after_style_is_refused_with_the_release_pipeline():
    mix = auth_mixture(release_cfg(AUTH_MIX__KEY_AFTER_STYLE=0.5))
    with pytest.raises(ValueError, match="KEY_AFTER_STYLE > 0 needs INPUT.STRONG_STYLE.VARIANT 'ours'"):
        mix.training_pipeline(tfm_train, tfm_test)


@pytest.mark.parametrize("sticky", [False, True])
def test_sticky_mixture_is_the_release_accident(sticky):
    mix = auth_mixture(release_cfg(AUTH_MIX__STICKY=sticky))
    fresh = pickle.loads(pickle.dumps(mix))  # what a data-loader worker gets at each epoch
    torch.manual_seed(0)
    draws = np.array([mix.draw_case() for _ in range(4000)])
    freq = np.bincount(draws, minlength=3) / len(draws)
    if sticky:
        first_restyled = int(np.argmax(draws != CLEAN))
        assert (draws[first_restyled:] != CLEAN).all()
        assert freq[WATERMARK_STRONG] == pytest.approx(0.4, abs=0.03)
        assert freq[STRONG] == pytest.approx(0.6, abs=0.03)
        assert not fresh.restyled_seen  # each worker's copy starts anew
    else:
        assert np.allclose(freq, (0.4, 0.4, 0.2), atol=0.03), freq
    with pytest.raises(ValueError, match="STICKY"):
        auth_mixture(release_cfg(AUTH_MIX__STICKY=1))
