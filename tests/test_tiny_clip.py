"""The built-in tiny CLIP: recipe identity, captions, deterministic training, cache, zero-shot skill."""
import dataclasses
import os
import os.path as osp

import clip
import numpy as np
import pytest
import torch
from PIL import Image

from dassl.data.datasets import build_dataset
from datasets.toy_render import CLASSNAMES, DOMAINS
from trainers import tiny_clip
from trainers.clip_backbone import load_clip_to_cpu
from trainers.tiny_clip import (
    DEFAULT_RECIPE,
    EVAL_TEMPLATE,
    build_tiny_clip,
    ensure_tiny_clip_weights,
    preprocess_images,
    pretrain_tiny_clip,
    zero_shot_accuracy,
)

# A recipe that trains in about a second: the machinery, not the skill.
MICRO = dataclasses.replace(DEFAULT_RECIPE, steps=2, warmup_steps=1, batch_size=8, images_per_class=1)


def test_recipe_hash_names_the_cache_file_and_tracks_every_ingredient():
    assert DEFAULT_RECIPE.filename == f"tiny-rn-{DEFAULT_RECIPE.short_hash()}.pt"
    assert dataclasses.replace(DEFAULT_RECIPE).short_hash() == DEFAULT_RECIPE.short_hash()
    for change in ({"steps": DEFAULT_RECIPE.steps + 1}, {"render_version": DEFAULT_RECIPE.render_version + 1},
                   {"captions": DEFAULT_RECIPE.captions[:-1]}, {"seed": DEFAULT_RECIPE.seed + 1}):
        assert dataclasses.replace(DEFAULT_RECIPE, **change).short_hash() != DEFAULT_RECIPE.short_hash()


def test_recipe_refuses_text_width_that_clip_cannot_reload():
    with pytest.raises(ValueError, match="multiple of 64"):
        dataclasses.replace(DEFAULT_RECIPE, transformer_width=96)


def test_evaluation_prompt_is_kept_out_of_the_captions():
    texts, classes, domains = tiny_clip._caption_table(DEFAULT_RECIPE)
    assert not {EVAL_TEMPLATE.format(c) for c in CLASSNAMES} & set(texts)
    # Every class is named in every style, and some captions name no style at all.
    pairs = {(int(c), int(d)) for c, d in zip(classes, domains)}
    assert {(c, d) for c in range(len(CLASSNAMES)) for d in range(len(DOMAINS))} <= pairs
    assert (domains < 0).any()
    for text, c in zip(texts, classes):
        assert CLASSNAMES[int(c)] in text


def test_truncated_text_encoding_matches_clip():
    torch.manual_seed(0)
    model = build_tiny_clip(DEFAULT_RECIPE)
    tokens = clip.tokenize(["a sketch of a heart.", "star", "a painting showing a crescent."],
                           context_length=model.context_length)
    with torch.no_grad():
        assert torch.allclose(tiny_clip._encode_text_truncated(model, tokens), model.encode_text(tokens), atol=1e-5)


def test_pretraining_is_deterministic_and_leaves_global_state_alone():
    rng_state, threads = torch.random.get_rng_state(), torch.get_num_threads()
    a = pretrain_tiny_clip(MICRO, log=lambda *_: None)
    b = pretrain_tiny_clip(MICRO, log=lambda *_: None)
    assert torch.equal(rng_state, torch.random.get_rng_state()) and torch.get_num_threads() == threads
    fresh = build_tiny_clip(MICRO).state_dict()
    sa, sb = a.state_dict(), b.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], fresh[k]) for k in sa if sa[k].is_floating_point())  # it trained
    assert not a.training


def test_weights_are_cached_atomically_and_reused(tmp_path, monkeypatch):
    messages = []
    path = ensure_tiny_clip_weights(tmp_path, MICRO, log=messages.append)
    assert osp.basename(path) == MICRO.filename and os.listdir(tmp_path) == [MICRO.filename]
    assert any("training it now" in m for m in messages)
    state = torch.load(path, weights_only=True)
    assert set(state) == set(build_tiny_clip(MICRO).state_dict())
    monkeypatch.setattr(tiny_clip, "pretrain_tiny_clip", lambda *a, **k: pytest.fail("must not retrain"))
    assert ensure_tiny_clip_weights(tmp_path, MICRO) == path


def test_preprocess_matches_resize_then_normalise():
    image = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    out = preprocess_images([image, Image.fromarray(image)], 32)
    assert out.shape == (2, 3, 32, 32) and torch.equal(out[0], out[1])
    expected = np.asarray(Image.fromarray(image).resize((32, 32), Image.BICUBIC), np.float32) / 255
    mean, std = np.array(tiny_clip.CLIP_MEAN), np.array(tiny_clip.CLIP_STD)
    assert np.allclose(out[0].permute(1, 2, 0).numpy(), (expected - mean) / std, atol=1e-5)


def test_pretrained_tiny_clip_knows_every_toy_domain(toy_root, tiny_clip_cache_dir, tiny_clip_backbone,
                                                     make_cfg):
    """Zero-shot with "a photo of a {}." on each domain's test split: far above chance (loose bound)."""
    cfg = make_cfg("configs/datasets/toy_domains.yaml", DATASET__ROOT=toy_root,
                   DATASET__SOURCE_DOMAINS=("photo",), DATASET__TARGET_DOMAINS=("sketch",),
                   MODEL__BACKBONE__NAME=tiny_clip_backbone, MODEL__CLIP__CACHE_DIR=tiny_clip_cache_dir)
    cfg.VERBOSE = False
    model = load_clip_to_cpu(cfg)
    dataset = build_dataset(cfg)
    chance = 1.0 / len(dataset.classnames)
    for domain, items in dataset.test_domains.items():
        images = [Image.open(item.impath).convert("RGB") for item in items]
        pixels = preprocess_images(images, model.visual.input_resolution)
        accuracy = zero_shot_accuracy(model, pixels, [item.label for item in items], dataset.classnames)
        assert accuracy > 2 * chance, f"{domain}: zero-shot accuracy {accuracy:.2f} (chance {chance:.2f})"
