"""CLIP loading: OpenAI names (cache and offline error), weight files, built-in names, random CLIPs."""
import hashlib
import os.path as osp
import urllib.error
import warnings

import clip
import pytest
import torch

from trainers import tiny_clip
from trainers.clip_backbone import (
    ClipLoadError,
    build_random_clip,
    clip_from_state_dict,
    load_clip_file,
    load_clip_to_cpu,
)


def _cfg(make_cfg, name, cache_dir):
    return make_cfg(MODEL__BACKBONE__NAME=str(name), MODEL__CLIP__CACHE_DIR=str(cache_dir))


def _same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _outputs(model):
    image = torch.randn(2, 3, model.visual.input_resolution, model.visual.input_resolution,
                        generator=torch.Generator().manual_seed(0))
    text = clip.tokenize(["a circle", "a star"], context_length=model.context_length)
    with torch.no_grad():
        return model.encode_image(image), model.encode_text(text)


def _trace(model, path):
    image = torch.zeros(1, 3, model.visual.input_resolution, model.visual.input_resolution)
    text = clip.tokenize(["a circle"], context_length=model.context_length)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.trace(model, (image, text)).save(str(path))


@pytest.fixture(scope="module")
def traced_tiny_rn(tmp_path_factory):
    """A random tiny CLIP and its TorchScript archive (OpenAI's file format), traced once."""
    model = build_random_clip("tiny-rn", seed=2)
    path = tmp_path_factory.mktemp("traced") / "tiny-rn-traced.pt"
    _trace(model, path)
    return model, path


@pytest.fixture
def no_network(monkeypatch):
    """Make every download attempt fail at once, like an offline machine."""
    def refuse(url, root):
        raise urllib.error.URLError("network is unreachable")
    monkeypatch.setattr(clip.clip, "_download", refuse)


# -- OpenAI names ---------------------------------------------------------------------------------
def test_offline_openai_name_names_the_file_and_folder(make_cfg, tmp_path, no_network):
    with pytest.raises(ClipLoadError) as info:
        load_clip_to_cpu(_cfg(make_cfg, "ViT-B/16", tmp_path))
    message = str(info.value)
    assert "ViT-B-16.pt" in message and str(tmp_path) in message and "MODEL.CLIP.CACHE_DIR" in message


def test_openai_name_is_read_from_the_cache_without_download(make_cfg, tmp_path, monkeypatch, no_network,
                                                            traced_tiny_rn):
    """A file in CACHE_DIR with the published checksum is loaded; no network is touched."""
    model, traced = traced_tiny_rn
    path = tmp_path / "RN50.pt"
    path.write_bytes(traced.read_bytes())
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    monkeypatch.setitem(clip.clip._MODELS, "RN50", f"https://example.invalid/models/{sha}/RN50.pt")
    loaded = load_clip_to_cpu(_cfg(make_cfg, "RN50", tmp_path))
    assert _same_weights(model, loaded)


def test_cached_openai_file_with_wrong_checksum_is_reported(make_cfg, tmp_path, no_network):
    (tmp_path / "RN50.pt").write_bytes(b"half a download")
    with pytest.raises(ClipLoadError, match="SHA256.*Delete it"):
        load_clip_to_cpu(_cfg(make_cfg, "RN50", tmp_path))


# -- files ----------------------------------------------------------------------------------------
def test_missing_file_and_unknown_name(make_cfg, tmp_path):
    with pytest.raises(ClipLoadError, match="nor an existing weight file.*nowhere.pt"):
        load_clip_to_cpu(_cfg(make_cfg, tmp_path / "nowhere.pt", tmp_path))
    with pytest.raises(ClipLoadError, match='neither an OpenAI CLIP name.*tiny-rn.*Did you mean "ViT-B/16"'):
        load_clip_to_cpu(_cfg(make_cfg, "ViT-B/61", tmp_path))
    with pytest.raises(ClipLoadError, match="does not exist"):
        load_clip_file(tmp_path / "nowhere.pt")


def test_non_clip_files_are_refused_clearly(tmp_path):
    torch.save({"weight": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(ClipLoadError, match="not a CLIP state dict.*text_projection"):
        load_clip_file(tmp_path / "other.pt")
    torch.save({"epoch": 3, "note": "hello"}, tmp_path / "meta.pt")
    with pytest.raises(ClipLoadError, match="does not hold a state dict"):
        load_clip_file(tmp_path / "meta.pt")
    (tmp_path / "text.pt").write_text("not a checkpoint")
    with pytest.raises(ClipLoadError, match="neither a TorchScript archive nor a state dict"):
        load_clip_file(tmp_path / "text.pt")


@pytest.mark.parametrize("arch", ["tiny-rn", "tiny-vit"])
def test_state_dict_round_trip_is_exact(make_cfg, tmp_path, arch):
    model = build_random_clip(arch, seed=1)
    torch.save(model.state_dict(), tmp_path / "plain.pt")
    torch.save({"state_dict": model.state_dict(), "epoch": 1}, tmp_path / "wrapped.pt")
    for name in ("plain.pt", "wrapped.pt"):
        loaded = load_clip_to_cpu(_cfg(make_cfg, tmp_path / name, tmp_path))
        assert _same_weights(model, loaded)
        assert not loaded.training and loaded.dtype == torch.float32
        assert all(p.device.type == "cpu" for p in loaded.parameters())
        for a, b in zip(_outputs(model), _outputs(loaded)):
            assert torch.equal(a, b)


def test_torchscript_round_trip(traced_tiny_rn):
    model, path = traced_tiny_rn
    loaded = load_clip_file(path)
    assert _same_weights(model, loaded)
    for a, b in zip(_outputs(model), _outputs(loaded)):
        assert torch.equal(a, b)


def test_wrong_head_layout_is_explained():
    """A width that is not a multiple of 64 cannot be rebuilt by clip.model.build_model."""
    sd = build_random_clip("tiny-vit").state_dict()
    sd["ln_final.weight"] = torch.ones(sd["ln_final.weight"].shape[0] + 1)
    with pytest.raises(ClipLoadError, match="does not fit clip.model.CLIP"):
        clip_from_state_dict(sd)


# -- random and built-in architectures --------------------------------------------------------------
def test_random_clips_are_seeded_and_leave_global_rng_alone():
    state = torch.random.get_rng_state()
    assert _same_weights(build_random_clip("tiny-rn", seed=5), build_random_clip("tiny-rn", seed=5))
    assert not _same_weights(build_random_clip("tiny-rn", seed=5), build_random_clip("tiny-rn", seed=6))
    assert torch.equal(state, torch.random.get_rng_state())
    with pytest.raises(ValueError, match="tiny-vit"):
        build_random_clip("tiny-vti")


def test_vit_b16_shape_has_vit_b16_sizes():
    model = build_random_clip("vit-b16-shape")
    assert model.context_length == 77 and model.visual.output_dim == 512
    assert model.visual.conv1.weight.shape == (768, 3, 16, 16) and len(model.visual.transformer.resblocks) == 12
    assert model.transformer.width == 512 and model.visual.input_resolution == 224


def test_tiny_clip_names_carry_the_pretraining_seed():
    assert tiny_clip.backbone_name(0) == "tiny-rn" and tiny_clip.backbone_name(3) == "tiny-rn-seed3"
    for seed in (0, 3):
        assert tiny_clip.parse_backbone_name(tiny_clip.backbone_name(seed)) == seed
    assert tiny_clip.parse_backbone_name("tiny-rn-seed0") == 0
    assert tiny_clip.parse_backbone_name("tiny-rn-seedx") is None
    assert tiny_clip.parse_backbone_name("ViT-B/16") is None
    assert tiny_clip.recipe_for_seed(0) == tiny_clip.DEFAULT_RECIPE
    assert tiny_clip.recipe_for_seed(3).filename != tiny_clip.DEFAULT_RECIPE.filename
    with pytest.raises(ValueError, match="integer >= 0"):
        tiny_clip.recipe_for_seed(-1)


def test_seeded_tiny_clip_is_pretrained_into_its_own_cache_file(make_cfg, tmp_path, monkeypatch):
    """`tiny-rn-seed<N>` trains the recipe with seed N (once) and caches it under its own name."""
    seen = []

    def fake_pretrain(recipe, **kwargs):
        seen.append(recipe.seed)
        return tiny_clip.build_tiny_clip(recipe)

    monkeypatch.setattr(tiny_clip, "pretrain_tiny_clip", fake_pretrain)
    load_clip_to_cpu(_cfg(make_cfg, "tiny-rn-seed7", tmp_path))
    load_clip_to_cpu(_cfg(make_cfg, "tiny-rn-seed7", tmp_path))
    assert seen == [7]
    assert osp.isfile(tmp_path / tiny_clip.recipe_for_seed(7).filename)


def test_random_architecture_names_are_not_loadable(make_cfg, tmp_path):
    with pytest.raises(ClipLoadError, match="random-weight architecture"):
        load_clip_to_cpu(_cfg(make_cfg, "tiny-vit", tmp_path))


def test_tiny_rn_loads_the_cached_pretrained_weights(make_cfg, tiny_clip_cache_dir, tiny_clip_seed,
                                                     tiny_clip_backbone, monkeypatch):
    monkeypatch.setattr(tiny_clip, "pretrain_tiny_clip", lambda *a, **k: pytest.fail("must not retrain"))
    model = load_clip_to_cpu(_cfg(make_cfg, tiny_clip_backbone, tiny_clip_cache_dir))
    recipe = tiny_clip.recipe_for_seed(tiny_clip_seed)
    cached = torch.load(osp.join(tiny_clip_cache_dir, recipe.filename), weights_only=True)
    assert model.context_length == tiny_clip.DEFAULT_RECIPE.context_length
    assert all(torch.equal(model.state_dict()[k], v) for k, v in cached.items())
    assert not model.training
