"""PromptTemplate layouts and shapes; CoOp / CoCoOp / ZeroshotCLIP model parts on a random tiny CLIP."""
import pathlib

import clip
import pytest
import torch
import torch.nn.functional as F
from clip.model import CLIP

from dassl.config import get_cfg_default
from trainers.cocoop import CoCoOpCLIP
from trainers.config import extend_cfg
from trainers.clip_backbone import check_input_size
from trainers.coop import CoOpCLIP, freeze_all_but
from trainers.prompts import PromptTemplate
from trainers.zsclip import ZeroShotClassifier, template_for

CONTEXT = 32
CLASSNAMES = ["dog", "fire_truck", "traffic light", "cat"]


def tiny_clip(vit=False, seed=0):
    torch.manual_seed(seed)
    vision = dict(vision_layers=2, vision_width=64, vision_patch_size=8) if vit else dict(
        vision_layers=(1, 1, 1, 1), vision_width=16, vision_patch_size=None
    )
    return CLIP(
        embed_dim=64, image_resolution=32, context_length=CONTEXT, vocab_size=49408,
        transformer_width=64, transformer_heads=1, transformer_layers=2, **vision,
    ).float().eval()


@pytest.fixture(scope="module")
def model():
    return tiny_clip()


@pytest.fixture(scope="module")
def vit_model():
    return tiny_clip(vit=True, seed=1)


def cfg_with(**overrides):
    cfg = extend_cfg(get_cfg_default())
    opts = []
    for key, value in overrides.items():
        opts += [key, str(value)]
    cfg.merge_from_list(opts)
    return cfg


def embed_text(model, texts):
    tokens = clip.tokenize(texts, context_length=CONTEXT)
    with torch.no_grad():
        return tokens, model.token_embedding(tokens)


# ---- PromptTemplate ----

@pytest.mark.parametrize(
    "position, layout",
    [
        ("end", "X X X X {}."),
        ("front", "{} X X X X."),
        ("middle", "X X {} X X."),
    ],
)
def test_class_token_positions_give_the_right_token_layout(model, position, layout):
    template = PromptTemplate(model, CLASSNAMES, n_ctx=4, class_token_position=position)
    texts = [layout.format(name.replace("_", " ")) for name in CLASSNAMES]
    tokens, expected = embed_text(model, texts)
    x_embedding = embed_text(model, ["X"])[1][0, 1]
    prompts = template.assemble(x_embedding.expand(4, -1))
    assert torch.equal(template.tokenized_prompts, tokens)
    torch.testing.assert_close(prompts, expected, atol=0, rtol=0)


def test_middle_position_with_odd_context_puts_the_shorter_half_first(model):
    template = PromptTemplate(model, ["cat"], n_ctx=3, class_token_position="middle")
    ctx = torch.arange(3.0)[:, None].expand(3, template.ctx_dim)
    prompts = template.assemble(ctx)
    name_len = template.name_lens[0]
    assert prompts[0, 1, 0] == 0  # ctx[:1], then the class name, then ctx[1:]
    assert prompts[0, 2 + name_len, 0] == 1 and prompts[0, 3 + name_len, 0] == 2


@pytest.mark.parametrize("position", ["end", "front", "middle"])
def test_assemble_shapes_for_every_kind_of_context(model, position):
    n_ctx, num_classes, batch = 3, len(CLASSNAMES), 5
    template = PromptTemplate(model, CLASSNAMES, n_ctx=n_ctx, class_token_position=position)
    dim = template.ctx_dim
    assert dim == model.ln_final.weight.shape[0]
    generic = torch.randn(n_ctx, dim)
    class_specific = torch.randn(num_classes, n_ctx, dim)
    per_image = torch.randn(batch, n_ctx, dim)
    per_image_class = torch.randn(batch, num_classes, n_ctx, dim)
    assert template.assemble(generic).shape == (num_classes, CONTEXT, dim)
    assert template.assemble(class_specific).shape == (num_classes, CONTEXT, dim)
    out = template.assemble(per_image, per_instance=True)
    assert out.shape == (batch, num_classes, CONTEXT, dim)
    # Image b, class c holds exactly what a generic context of image b gives for class c.
    torch.testing.assert_close(out[2], template.assemble(per_image[2]))
    out4 = template.assemble(per_image_class)
    assert out4.shape == (batch, num_classes, CONTEXT, dim)
    torch.testing.assert_close(out4[1, 2], template.assemble(per_image_class[1])[2])
    assert template.tokenized_prompts.shape == (num_classes, CONTEXT)
    assert template.max_length == int(template.tokenized_prompts.argmax(-1).max()) + 1


def test_context_receives_gradients_through_assemble(model):
    template = PromptTemplate(model, CLASSNAMES, n_ctx=2, class_token_position="front")
    ctx = torch.randn(4, 2, template.ctx_dim, requires_grad=True)
    template.assemble(ctx, per_instance=True).sum().backward()
    assert torch.equal(ctx.grad, torch.full_like(ctx, len(CLASSNAMES)))


def test_ctx_init_sets_context_from_the_words(model):
    template = PromptTemplate(model, CLASSNAMES, n_ctx=16, ctx_init="a_photo of a")
    assert template.n_ctx == 4  # the token count of the init words, not N_CTX
    tokens, expected = embed_text(model, [f"a photo of a {n.replace('_', ' ')}." for n in CLASSNAMES])
    torch.testing.assert_close(template.init_context, expected[0, 1:5])
    torch.testing.assert_close(template.assemble(template.init_context), expected)
    assert torch.equal(template.tokenized_prompts, tokens)
    assert PromptTemplate(model, CLASSNAMES, n_ctx=2).init_context is None


def test_checkpoint_keys_match_upstream(model):
    template = PromptTemplate(model, CLASSNAMES, n_ctx=2, class_token_position="middle")
    assert set(template.state_dict()) == {"token_prefix", "token_suffix"}


def test_template_bad_input_errors(model):
    with pytest.raises(ValueError, match="CLASS_TOKEN_POSITION"):
        PromptTemplate(model, CLASSNAMES, n_ctx=2, class_token_position="start")
    with pytest.raises(ValueError, match="N_CTX"):
        PromptTemplate(model, CLASSNAMES, n_ctx=0)
    with pytest.raises(ValueError, match="non-empty list of class names"):
        PromptTemplate(model, "dog", n_ctx=2)
    with pytest.raises(ValueError, match="context length is 32"):
        PromptTemplate(model, ["cat", "a very long name " * 3], n_ctx=20)
    template = PromptTemplate(model, CLASSNAMES, n_ctx=2)
    with pytest.raises(ValueError, match="per_instance=True"):
        template.assemble(torch.randn(3, 2, template.ctx_dim))
    with pytest.raises(ValueError, match=r"\[n_ctx, D\] = \[2, 64\]"):
        template.assemble(torch.randn(3, template.ctx_dim))
    with pytest.raises(ValueError, match="4-D context"):
        template.assemble(torch.randn(2, 3, 2, template.ctx_dim))


# ---- CoOp ----

def test_coop_only_prompt_learner_learns(model):
    cfg = cfg_with(**{"TRAINER.COOP.N_CTX": 4, "TRAINER.COOP.CSC": True})
    coop = CoOpCLIP(cfg.TRAINER.COOP, CLASSNAMES, model)
    freeze_all_but(coop, coop.prompt_learner)
    trainable = {name for name, p in coop.named_parameters() if p.requires_grad}
    assert trainable == {"prompt_learner.ctx"}
    assert coop.prompt_learner.ctx.shape == (len(CLASSNAMES), 4, coop.prompt_learner.ctx_dim)

    images = torch.randn(3, 3, 32, 32)
    logits = coop(images)
    assert logits.shape == (3, len(CLASSNAMES))
    F.cross_entropy(logits, torch.tensor([0, 1, 2])).backward()
    with_grad = {name for name, p in coop.named_parameters() if p.grad is not None}
    assert with_grad == {"prompt_learner.ctx"}
    assert coop.prompt_learner.ctx.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.parameters())
    coop.zero_grad(set_to_none=True)


@torch.no_grad()
def test_coop_logits_equal_clip_with_the_same_text(vit_model):
    # A context initialised from words is exactly CLIP with the text prompt "a photo of a <class>.".
    cfg = cfg_with(**{"TRAINER.COOP.CTX_INIT": "a photo of a"})
    coop = CoOpCLIP(cfg.TRAINER.COOP, CLASSNAMES, vit_model)
    images = torch.randn(2, 3, 32, 32)
    texts = [f"a photo of a {n.replace('_', ' ')}." for n in CLASSNAMES]
    image_f = F.normalize(vit_model.encode_image(images), dim=-1)
    text_f = F.normalize(vit_model.encode_text(clip.tokenize(texts, context_length=CONTEXT)), dim=-1)
    expected = vit_model.logit_scale.exp() * image_f @ text_f.t()
    torch.testing.assert_close(coop(images), expected, atol=1e-4, rtol=1e-4)


def test_input_size_check(model):
    check_input_size(cfg_with(**{"INPUT.SIZE": (32, 32)}), model)
    with pytest.raises(ValueError, match=r"set INPUT.SIZE \(32, 32\)"):
        check_input_size(cfg_with(**{"INPUT.SIZE": (224, 224)}), model)


# ---- CoCoOp ----

def cocoop_model(clip_model, **overrides):
    cfg = cfg_with(**{"TRAINER.COCOOP.N_CTX": 4, **overrides})
    torch.manual_seed(0)
    return CoCoOpCLIP(cfg.TRAINER.COCOOP, CLASSNAMES, clip_model)


def per_image_loop_logits(cocoop, images):
    """Upstream's reference: one text-encoder call per image, untruncated."""
    image_f = F.normalize(cocoop.image_encoder(images), dim=-1)
    prompts = cocoop.prompt_learner(image_f)
    tokenized = cocoop.prompt_learner.tokenized_prompts
    rows = []
    for b in range(images.shape[0]):
        text_f = F.normalize(cocoop.text_encoder(prompts[b], tokenized, truncate=False), dim=-1)
        rows.append(cocoop.logit_scale.exp() * image_f[b] @ text_f.t())
    return torch.stack(rows)


@pytest.mark.parametrize("vit", [False, True])
def test_cocoop_batched_text_path_equals_per_image_loop(model, vit_model, vit):
    cocoop = cocoop_model(vit_model if vit else model)
    # A non-trivial meta-net so that every image really gets different prompts.
    torch.nn.init.normal_(cocoop.prompt_learner.meta_net.linear2.weight, std=0.5)
    images = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        expected = per_image_loop_logits(cocoop, images)
        assert not torch.allclose(expected[0], expected[1])
        torch.testing.assert_close(cocoop(images), expected, atol=1e-4, rtol=1e-4)
        cocoop.text_chunk_size = 5  # chunks that cut through an image's C=4 prompts
        torch.testing.assert_close(cocoop(images), expected, atol=1e-4, rtol=1e-4)


def test_cocoop_batched_text_encoder_is_one_call(model):
    cocoop = cocoop_model(model)
    calls = []
    handle = cocoop.text_encoder.ln_final.register_forward_hook(lambda m, i, o: calls.append(o.shape[0]))
    with torch.no_grad():
        cocoop(torch.randn(3, 3, 32, 32))
    handle.remove()
    assert calls == [3 * len(CLASSNAMES)]


def test_cocoop_only_prompt_learner_learns(model):
    cocoop = cocoop_model(model)
    freeze_all_but(cocoop, cocoop.prompt_learner)
    expected = {
        "prompt_learner.ctx",
        "prompt_learner.meta_net.linear1.weight",
        "prompt_learner.meta_net.linear1.bias",
        "prompt_learner.meta_net.linear2.weight",
        "prompt_learner.meta_net.linear2.bias",
    }
    assert {name for name, p in cocoop.named_parameters() if p.requires_grad} == expected
    logits = cocoop(torch.randn(2, 3, 32, 32))
    F.cross_entropy(logits, torch.tensor([1, 3])).backward()
    assert {name for name, p in cocoop.named_parameters() if p.grad is not None} == expected
    assert all(p.grad is None for p in model.parameters())
    assert set(cocoop.prompt_learner.state_dict()) == {
        "ctx", "token_prefix", "token_suffix", *(k.split(".", 1)[1] for k in expected if "meta_net" in k)
    }
    cocoop.zero_grad(set_to_none=True)


def test_cocoop_meta_net_shape(model):
    meta_net = cocoop_model(model).prompt_learner.meta_net
    vis_dim = model.visual.output_dim
    assert meta_net.linear1.in_features == vis_dim and meta_net.linear1.out_features == vis_dim // 16
    assert meta_net.linear2.out_features == model.ln_final.weight.shape[0]


def test_cocoop_rejects_negative_chunk_size(model):
    with pytest.raises(ValueError, match="TEXT_CHUNK_SIZE"):
        cocoop_model(model, **{"TRAINER.COCOOP.TEXT_CHUNK_SIZE": -4})


# ---- ZeroshotCLIP ----

@torch.no_grad()
def test_zero_shot_classifier_equals_clip(model):
    prompts = [f"a photo of a {n}." for n in ["dog", "cat"]]
    classifier = ZeroShotClassifier(model, prompts)
    images = torch.randn(2, 3, 32, 32)
    logits_per_image, _ = model(images, clip.tokenize(prompts, context_length=CONTEXT))
    torch.testing.assert_close(classifier(images), logits_per_image, atol=1e-4, rtol=1e-4)


def test_zero_shot_templates():
    assert template_for(cfg_with(**{"DATASET.NAME": "ToyDomains"})) == "a photo of a {}."
    assert template_for(cfg_with(**{"DATASET.NAME": "OxfordPets"})) == "a photo of a {}, a type of pet."
    assert template_for(cfg_with(**{"DATASET.NAME": "Unknown"})) == "a photo of a {}."
    custom = cfg_with(**{"TRAINER.ZSCLIP.TEMPLATE": "a drawing of a {}."})
    assert template_for(custom) == "a drawing of a {}."
    with pytest.raises(ValueError, match="exactly one"):
        template_for(cfg_with(**{"TRAINER.ZSCLIP.TEMPLATE": "a photo"}))


# ---- end to end through train.py (random tiny CLIP from a state-dict file, 32-px colour tree) ----

REPO = pathlib.Path(__file__).resolve().parents[1]
COLORS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


@pytest.fixture(scope="module")
def run_inputs(tmp_path_factory):
    from PIL import Image

    base = tmp_path_factory.mktemp("baselines_e2e")
    for domain, scale in (("light", 1.0), ("dark", 0.5)):
        for cname, rgb in COLORS.items():
            folder = base / "data" / domain / cname
            folder.mkdir(parents=True)
            for i in range(4):
                value = tuple(int(c * scale) + 5 * i for c in rgb)
                Image.new("RGB", (32, 32), value).save(folder / f"{i}.png")
    backbone = base / "tiny_clip.pt"
    torch.save(tiny_clip().state_dict(), backbone)
    return base / "data", str(backbone)


def run_trainer(run_inputs, out, trainer, *opts, flags=()):
    import train
    import trainers.cocoop  # noqa: F401  (registers the baselines even before train.py lists them)
    import trainers.coop  # noqa: F401
    import trainers.zsclip  # noqa: F401

    root, backbone = run_inputs
    return train.main([
        *flags, "--root", str(root), "--seed", "1", "--trainer", trainer, "--output-dir", str(out),
        "--source-domains", "light", "--target-domains", "dark",
        "--config-file", str(REPO / "configs" / "trainers" / trainer / "tiny.yaml"),
        "DATASET.NAME", "DomainFolders",
        "DATASET.TEST_SETS", "['authorized=source', 'unauthorized=target']",
        "MODEL.BACKBONE.NAME", backbone, "USE_CUDA", "False", "OPTIM.MAX_EPOCH", "1",
        "DATALOADER.TRAIN_X.BATCH_SIZE", "4", *opts,
    ])


@pytest.mark.parametrize(
    "trainer, opts",
    [
        ("CoOp", ("TRAINER.COOP.CSC", "True", "TRAINER.COOP.CLASS_TOKEN_POSITION", "front")),
        ("CoCoOp", ("TRAINER.COCOOP.TEXT_CHUNK_SIZE", "5", "TRAINER.COCOOP.PREC", "fp16")),
    ],
)
def test_prompt_learners_fit_and_reload(run_inputs, tmp_path, trainer, opts, monkeypatch):
    import json
    import warnings

    from trainers import precision

    out = tmp_path / "run"
    monkeypatch.setattr(precision, "_already_warned", set())
    if "fp16" in opts:
        with pytest.warns(UserWarning, match="needs a CUDA device"):
            fitted = run_trainer(run_inputs, out, trainer, *opts)
    else:
        fitted = run_trainer(run_inputs, out, trainer, *opts)
    assert fitted.prec == "fp32"  # fp16 requested on a CPU falls back
    assert list(fitted._models) == ["prompt_learner"]
    learner = fitted.model.prompt_learner
    assert {n for n, p in fitted.model.named_parameters() if p.requires_grad} == {
        "prompt_learner." + n for n, _ in learner.named_parameters()
    }
    results = json.loads((out / "results.json").read_text())
    assert results["finished"] and set(results["final"]) == {"authorized", "unauthorized"}
    ckpt = torch.load(out / "prompt_learner" / "model.pth.tar-1", weights_only=True)
    assert {"ctx", "token_prefix", "token_suffix"} <= set(ckpt["state_dict"])

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        evaluated = run_trainer(
            run_inputs, tmp_path / "eval", trainer, *opts,
            flags=("--eval-only", "--model-dir", str(out), "--load-epoch", "1"),
        )
    assert not [w for w in caught if "needs a CUDA device" in str(w.message)]  # once per process
    for key, value in ckpt["state_dict"].items():
        torch.testing.assert_close(evaluated.model.prompt_learner.state_dict()[key], value)
    assert evaluated.last_test_results == fitted.last_test_results

    from tools.paired_compare import run_hits  # the run rebuilt from its results.json, per image

    hits = run_hits(str(out), "unauthorized=target")
    final = results["final"]["unauthorized"]
    assert hits.dtype == torch.bool and (hits.numel(), int(hits.sum())) == (final["total"], final["correct"])


def test_zeroshot_clip_runs_without_training(run_inputs, tmp_path):
    import json

    out = tmp_path / "zs"
    trainer = run_trainer(run_inputs, out, "ZeroshotCLIP")
    assert list(trainer._models) == []
    results = json.loads((out / "results.json").read_text())
    assert results["finished"] and results["epochs"] == []
    assert set(results["final"]) == {"authorized", "unauthorized"}
    assert "'a photo of a red.'" in (out / "log.txt").read_text()
