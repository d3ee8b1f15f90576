"""TextEncoder: batched, truncated encoding must equal CLIP's own full-context encoding."""
import warnings

import clip
import pytest
import torch
from clip.model import CLIP

from trainers import precision
from trainers.text_encoder import TextEncoder, encode_class_prompts

CONTEXT = 32


def tiny_clip(vit=False, seed=0):
    torch.manual_seed(seed)
    vision = dict(vision_layers=2, vision_width=64, vision_patch_size=8) if vit else dict(
        vision_layers=(1, 1, 1, 1), vision_width=16, vision_patch_size=None
    )
    return CLIP(
        embed_dim=64, image_resolution=32, context_length=CONTEXT, vocab_size=49408,
        transformer_width=64, transformer_heads=1, transformer_layers=2, **vision,
    ).float().eval()


TEXTS = ["a photo of a dog.", "a sketch of a very large red fire truck.", "cat", "X X X X bird."]


@pytest.fixture(scope="module")
def model():
    return tiny_clip()


@pytest.fixture(scope="module")
def tokens_and_embeddings(model):
    tokens = clip.tokenize(TEXTS, context_length=CONTEXT)
    with torch.no_grad():
        return tokens, model.token_embedding(tokens)


@torch.no_grad()
def test_plain_token_embeddings_match_clip_encode_text(model, tokens_and_embeddings):
    tokens, emb = tokens_and_embeddings
    expected = model.encode_text(tokens)
    got = TextEncoder(model)(emb, tokens)
    assert got.shape == (len(TEXTS), model.text_projection.shape[1])
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_truncated_equals_untruncated_full_context(model, tokens_and_embeddings):
    tokens, emb = tokens_and_embeddings
    # Random embeddings (not token embeddings): truncation must be exact for learned prompts too.
    emb = emb + 0.1 * torch.randn_like(emb)
    encoder = TextEncoder(model)
    full = encoder(emb, tokens, truncate=False)
    cut = encoder(emb, tokens, truncate=True)
    torch.testing.assert_close(cut, full, atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_truncation_really_shortens_the_sequence(model, tokens_and_embeddings):
    tokens, emb = tokens_and_embeddings
    seen = []
    block = model.transformer.resblocks[0]
    handle = block.ln_1.register_forward_hook(lambda m, i, o: seen.append(o.shape[1]))
    try:
        TextEncoder(model)(emb, tokens, truncate=True)
    finally:
        handle.remove()
    assert seen == [int(tokens.argmax(-1).max()) + 1]
    assert seen[0] < CONTEXT
    # The block's own full-size mask was not touched.
    assert block.attn_mask.shape == (CONTEXT, CONTEXT)


@torch.no_grad()
def test_chunked_equals_unchunked(model, tokens_and_embeddings):
    tokens, emb = tokens_and_embeddings
    encoder = TextEncoder(model)
    whole = encoder(emb, tokens)
    for chunk in (1, 3, len(TEXTS), 100):
        torch.testing.assert_close(encoder(emb, tokens, chunk_size=chunk), whole, atol=1e-5, rtol=1e-5)


def test_gradients_flow_to_the_prompts_only(model, tokens_and_embeddings):
    tokens, emb = tokens_and_embeddings
    emb = emb.clone().requires_grad_(True)
    model.requires_grad_(False)
    TextEncoder(model)(emb, tokens).sum().backward()
    assert emb.grad is not None and emb.grad.abs().sum() > 0
    # Positions after the last EOT cannot influence the output.
    last = int(tokens.argmax(-1).max())
    assert emb.grad[:, last + 1:].abs().sum() == 0


@torch.no_grad()
def test_vit_clip_and_short_inputs():
    model = tiny_clip(vit=True, seed=1)
    tokens = clip.tokenize(TEXTS, context_length=CONTEXT)
    emb = model.token_embedding(tokens)
    expected = model.encode_text(tokens)
    # Inputs shorter than the context (already cut by the caller) are accepted.
    length = int(tokens.argmax(-1).max()) + 3
    got = TextEncoder(model)(emb[:, :length], tokens[:, :length], truncate=False)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_encode_class_prompts_matches_encode_text(model):
    texts = ["a photo of a cat.", "a photo of a traffic light."]
    expected = model.encode_text(clip.tokenize(texts, context_length=CONTEXT))
    torch.testing.assert_close(encode_class_prompts(model, texts), expected, atol=1e-5, rtol=1e-5)


def test_bad_inputs_give_clear_errors(model, tokens_and_embeddings):
    tokens, emb = tokens_and_embeddings
    encoder = TextEncoder(model)
    with pytest.raises(ValueError, match=r"\[N, L, D\]"):
        encoder(emb.unsqueeze(0), tokens)
    with pytest.raises(ValueError, match="width"):
        encoder(emb[..., :10], tokens)
    with pytest.raises(ValueError, match="tokenized prompts must have shape"):
        encoder(emb, tokens[:2])
    with pytest.raises(ValueError, match="context length"):
        encoder(torch.cat([emb, emb], dim=1), torch.cat([tokens, tokens], dim=1))
    with pytest.raises(ValueError, match="chunk_size"):
        encoder(emb, tokens, chunk_size=-1)
    with pytest.raises(ValueError, match="too long"):
        encode_class_prompts(model, ["word " * 40])
    with pytest.raises(ValueError, match="non-empty list"):
        encode_class_prompts(model, "a photo of a cat.")


# ---- precision helper ----

def test_fp16_on_cpu_falls_back_to_fp32_with_one_warning(monkeypatch):
    monkeypatch.setattr(precision, "_already_warned", set())
    with pytest.warns(UserWarning, match="fp32"):
        assert precision.resolve_precision("fp16", "cpu") == "fp32"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert precision.resolve_precision("fp16", torch.device("cpu")) == "fp32"
    assert precision.resolve_precision("fp32", "cpu") == "fp32"
    assert precision.resolve_precision("fp16", "cuda") == "fp16"
    assert precision.resolve_precision("amp", "cuda:0") == "amp"


def test_precision_contexts_and_scaler():
    import contextlib

    assert isinstance(precision.autocast("amp", "cpu"), contextlib.nullcontext)
    assert isinstance(precision.autocast("fp32", "cuda"), contextlib.nullcontext)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "CUDA is not available" on CPU-only machines
        assert isinstance(precision.autocast("amp", torch.device("cuda")), torch.autocast)
    assert precision.make_grad_scaler("amp", "cpu") is None
    assert precision.make_grad_scaler("fp16", "cuda") is None
    with pytest.raises(ValueError, match="TRAINER.COOP.PREC"):
        precision.check_precision("bf16", "TRAINER.COOP.PREC")
    with pytest.raises(ValueError, match="fp16, fp32, amp"):
        precision.resolve_precision("half", "cpu")


def test_cast_clip(monkeypatch):
    monkeypatch.setattr(precision, "_already_warned", {"fp16"})
    model = tiny_clip()
    model.half()
    precision.cast_clip(model, "fp16", "cpu")  # CPU: back to fp32
    assert model.dtype == torch.float32
    assert all(p.dtype == torch.float32 for p in model.parameters())
    precision.cast_clip(model, "fp16", "cuda")  # only casts, does not move
    assert model.dtype == torch.float16
    assert model.text_projection.dtype == torch.float16
    assert model.ln_final.weight.dtype == torch.float32  # LayerNorms stay fp32 as in OpenAI's release
    precision.cast_clip(model, "amp", "cuda")
    assert model.dtype == torch.float32
