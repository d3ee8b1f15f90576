"""A CLIP small enough to train on two CPU cores, pretrained contrastively on its own synthetic pool.

Why it exists: CLIP weights cannot be downloaded on our machines, yet zero-shot CLIP, CoOp and IP-CLIP
must be exercised on a model that really knows the toy classes. The recipe (architecture, data,
optimisation) is a frozen dataclass; its hash names the cached weights, so changing any ingredient
(including the renderer's version) trains a new file instead of silently reusing a stale one.

The pool is drawn from a random stream of its own, never from the benchmark's files, and the
evaluation prompt "a photo of a {}." is kept out of the captions so that prompt learning has room to
improve on zero-shot.
"""
import dataclasses
import hashlib
import json
import math
import os
import os.path as osp
import re
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import clip
import numpy as np
import torch
import torch.nn.functional as F
from clip.model import CLIP
from PIL import Image

from dassl.errors import ConfigError
from datasets.toy_domains import PRETRAIN_STREAM, toy_rng
from datasets.toy_render import CLASSNAMES, DOMAINS, RENDER_VERSION, render_images

__all__ = [
    "TinyClipRecipe",
    "DEFAULT_RECIPE",
    "BACKBONE_NAME",
    "backbone_name",
    "parse_backbone_name",
    "recipe_for_seed",
    "EVAL_TEMPLATE",
    "CLIP_MEAN",
    "CLIP_STD",
    "build_tiny_clip",
    "cached_weights_path",
    "pretrain_tiny_clip",
    "ensure_tiny_clip_weights",
    "preprocess_images",
    "zero_shot_accuracy",
]

# ZeroshotCLIP's template for ToyDomains; deliberately absent from the pretraining captions.
EVAL_TEMPLATE = "a photo of a {}."
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# Captions name the class and (mostly) the style; {style} is one of the domain's words below.
CAPTION_TEMPLATES = (
    "a {style} of a {cls}.",
    "a {cls} in {style} style.",
    "{style} of a {cls}",
    "a {style} showing a {cls}.",
    "this {style} shows a {cls}.",
    "the {cls}, as a {style}.",
    "a {cls}.",
    "{cls}",
)
STYLE_WORDS = {
    "photo": ("photo", "photograph", "shaded render", "realistic picture"),
    "clipart": ("clipart", "cartoon", "flat icon", "vector graphic"),
    "sketch": ("sketch", "pencil drawing", "line drawing", "doodle"),
    "painting": ("painting", "oil painting", "watercolour", "artwork"),
}


@dataclass(frozen=True)
class TinyClipRecipe:
    """Everything that decides the pretrained weights (hashed into the cache file name)."""

    # Architecture (clip.model.CLIP arguments; text width must be a multiple of 64, see build_model).
    embed_dim: int = 128
    image_resolution: int = 32
    vision_layers: tuple = (1, 1, 1, 1)
    vision_width: int = 16
    context_length: int = 32
    transformer_width: int = 128
    transformer_layers: int = 3
    # Data: the pretraining pool, rendered like the benchmark and resized to image_resolution.
    images_per_class: int = 100          # per (class, domain) pair
    render_size: int = 40
    render_version: int = RENDER_VERSION
    captions: tuple = CAPTION_TEMPLATES
    style_words: tuple = tuple(STYLE_WORDS.items())
    # Optimisation.
    steps: int = 1000
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_steps: int = 50
    seed: int = 0
    threads: int = 2                     # fixed so that the result does not depend on the machine

    def __post_init__(self):
        if self.transformer_width % 64:
            raise ValueError(
                f"TinyClipRecipe.transformer_width must be a multiple of 64 (clip.model.build_model infers "
                f"heads = width // 64 when loading), got {self.transformer_width}"
            )

    def short_hash(self):
        blob = json.dumps(asdict(self), sort_keys=True, default=list).encode()
        return hashlib.sha256(blob).hexdigest()[:10]

    @property
    def filename(self):
        return f"tiny-rn-{self.short_hash()}.pt"


DEFAULT_RECIPE = TinyClipRecipe()

#: MODEL.BACKBONE.NAME of the tiny CLIP; `tiny-rn-seed<N>` is the same recipe pretrained from seed N
#: (its own pool, initialisation and batch order): a stand-in for "the same recipe on another
#: machine", whose float kernels give slightly different weights.
BACKBONE_NAME = "tiny-rn"
_SEEDED_NAME = re.compile(r"^tiny-rn-seed(\d+)$")


def recipe_for_seed(seed):
    """The default recipe pretrained from `seed` (seed 0 is DEFAULT_RECIPE itself)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"a tiny CLIP pretraining seed is an integer >= 0, got {seed!r}")
    return dataclasses.replace(DEFAULT_RECIPE, seed=seed)


def backbone_name(seed=0):
    """MODEL.BACKBONE.NAME of the tiny CLIP pretrained from `seed` (`tiny-rn` for the default 0)."""
    recipe_for_seed(seed)  # validates
    return BACKBONE_NAME if seed == DEFAULT_RECIPE.seed else f"{BACKBONE_NAME}-seed{seed}"


def parse_backbone_name(name):
    """The pretraining seed a tiny-CLIP backbone name asks for, or None if it names no tiny CLIP."""
    if name == BACKBONE_NAME:
        return DEFAULT_RECIPE.seed
    match = _SEEDED_NAME.match(name)
    return int(match.group(1)) if match else None


def build_tiny_clip(recipe=DEFAULT_RECIPE):
    """The recipe's architecture with CLIP's own random initialisation (float32, CPU)."""
    return CLIP(
        embed_dim=recipe.embed_dim,
        image_resolution=recipe.image_resolution,
        vision_layers=tuple(recipe.vision_layers),
        vision_width=recipe.vision_width,
        vision_patch_size=None,
        context_length=recipe.context_length,
        vocab_size=len(clip.clip._tokenizer.encoder),
        transformer_width=recipe.transformer_width,
        transformer_heads=recipe.transformer_width // 64,
        transformer_layers=recipe.transformer_layers,
    ).float()


def cached_weights_path(cache_dir, recipe=DEFAULT_RECIPE):
    return osp.join(osp.abspath(osp.expanduser(cache_dir)), recipe.filename)


# ----------------------------------------------------------------------------------------------
# Images and captions.
# ----------------------------------------------------------------------------------------------
def preprocess_images(images, resolution):
    """uint8 arrays [N, H, W, 3] or PIL images -> normalised float tensor [N, 3, res, res].

    Mirrors the benchmark's test transform (bicubic resize of the shorter side, centre crop, CLIP
    mean/std), so that pretraining and evaluation see pixels prepared the same way.
    """
    out = np.empty((len(images), resolution, resolution, 3), np.float32)
    for i, image in enumerate(images):
        img = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
        img = img.convert("RGB")
        w, h = img.size
        scale = resolution / min(w, h)
        img = img.resize((max(resolution, round(w * scale)), max(resolution, round(h * scale))), Image.BICUBIC)
        left, top = (img.size[0] - resolution) // 2, (img.size[1] - resolution) // 2
        out[i] = np.asarray(img.crop((left, top, left + resolution, top + resolution)), np.float32) / 255.0
    tensor = torch.from_numpy(out).permute(0, 3, 1, 2)
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return (tensor - mean) / std


def _caption_table(recipe):
    """All captions with, per caption, its class and its domain (-1 when it names no style)."""
    texts, classes, domains = [], [], []
    banned = {EVAL_TEMPLATE.format(c) for c in CLASSNAMES}
    style_words = dict(recipe.style_words)
    for c, cls in enumerate(CLASSNAMES):
        for template in recipe.captions:
            styled = "{style}" in template
            for d, domain in enumerate(DOMAINS if styled else (None,)):
                for style in style_words[domain] if styled else ("",):
                    text = template.format(style=style, cls=cls)
                    if text not in banned:
                        texts.append(text)
                        classes.append(c)
                        domains.append(d if styled else -1)
    return texts, torch.tensor(classes), torch.tensor(domains)


def _render_pool(recipe):
    images, classes, domains = [], [], []
    for d, domain in enumerate(DOMAINS):
        for c, cls in enumerate(CLASSNAMES):
            rng = toy_rng(PRETRAIN_STREAM, recipe.seed, domain, cls)
            images.append(render_images(cls, domain, recipe.images_per_class, rng, size=recipe.render_size))
            classes += [c] * recipe.images_per_class
            domains += [d] * recipe.images_per_class
    pixels = preprocess_images(np.concatenate(images), recipe.image_resolution)
    return pixels, torch.tensor(classes), torch.tensor(domains)


# ----------------------------------------------------------------------------------------------
# Training.
# ----------------------------------------------------------------------------------------------
@contextmanager
def _fixed_threads(n):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _lr_at(step, recipe):
    if step < recipe.warmup_steps:
        return recipe.lr * (step + 1) / recipe.warmup_steps
    progress = (step - recipe.warmup_steps) / max(1, recipe.steps - recipe.warmup_steps)
    return recipe.lr * 0.5 * (1 + math.cos(math.pi * progress))


def _encode_text_truncated(model, tokens):
    """encode_text on tokens cut after the longest caption's EOT: exact under the causal mask, and
    about three times cheaper for captions of a dozen tokens in a 32-token context."""
    length = int(tokens.argmax(dim=-1).max()) + 1
    tokens = tokens[:, :length]
    x = model.token_embedding(tokens) + model.positional_embedding[:length]
    mask = model.transformer.resblocks[0].attn_mask[:length, :length]
    x = x.permute(1, 0, 2)
    for block in model.transformer.resblocks:
        h = block.ln_1(x)
        x = x + block.attn(h, h, h, need_weights=False, attn_mask=mask.to(h.dtype))[0]
        x = x + block.mlp(block.ln_2(x))
    x = model.ln_final(x.permute(1, 0, 2))
    return x[torch.arange(x.shape[0]), tokens.argmax(dim=-1)] @ model.text_projection


def _describes(img_cls, img_dom, txt_cls, txt_dom):
    """[images, captions] mask: the caption names the image's class and its style (or no style)."""
    same_style = (txt_dom[None, :] < 0) | (img_dom[:, None] == txt_dom[None, :])
    return (img_cls[:, None] == txt_cls[None, :]) & same_style


def _contrastive_loss(model, pixels, img_cls, img_dom, tokens, txt_cls, txt_dom):
    """Symmetric InfoNCE where every caption that truly describes an image counts as a positive.

    With ten classes a batch of 128 repeats each caption many times; treating the duplicates as
    negatives (plain CLIP loss) would push apart images of the same class and style.
    """
    image_features = F.normalize(model.encode_image(pixels), dim=-1)
    text_features = F.normalize(_encode_text_truncated(model, tokens), dim=-1)
    logits = model.logit_scale.exp() * image_features @ text_features.t()
    target = _describes(img_cls, img_dom, txt_cls, txt_dom).float()
    loss_i = -(target / target.sum(1, keepdim=True) * F.log_softmax(logits, dim=1)).sum(1).mean()
    target_t = target.t()
    loss_t = -(target_t / target_t.sum(1, keepdim=True) * F.log_softmax(logits.t(), dim=1)).sum(1).mean()
    return (loss_i + loss_t) / 2


def pretrain_tiny_clip(recipe=DEFAULT_RECIPE, log_every=100, log=print):
    """Train the recipe from scratch and return the model (eval mode, float32, CPU).

    Deterministic: seeded, fixed step count, fixed thread count, own random generators (the global
    RNG state of the caller is left untouched).
    """
    start = time.time()
    with _fixed_threads(recipe.threads), torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        model = build_tiny_clip(recipe)
        pixels, img_cls, img_dom = _render_pool(recipe)
        texts, cap_cls, cap_dom = _caption_table(recipe)
        tokens = clip.tokenize(texts, context_length=recipe.context_length)
        log(f"Pretraining the tiny CLIP: {len(pixels)} images, {len(texts)} captions, {recipe.steps} steps "
            f"of batch {recipe.batch_size}")
        generator = torch.Generator().manual_seed(recipe.seed)
        decay, no_decay = [], []
        for name, param in model.named_parameters():
            (decay if param.ndim >= 2 and "embedding" not in name else no_decay).append(param)
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": recipe.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=recipe.lr, betas=(0.9, 0.98), eps=1e-6, fused=True,
        )
        model.train()
        for step in range(recipe.steps):
            for group in optimizer.param_groups:
                group["lr"] = _lr_at(step, recipe)
            idx = torch.randint(len(pixels), (recipe.batch_size,), generator=generator)
            # One caption per image, drawn among the captions that describe it.
            match = _describes(img_cls[idx], img_dom[idx], cap_cls, cap_dom)
            choice = torch.multinomial(match.float(), 1, generator=generator).squeeze(1)
            batch = pixels[idx]
            flip = torch.rand(len(idx), generator=generator) < 0.5
            batch = torch.where(flip[:, None, None, None], batch.flip(-1), batch)
            loss = _contrastive_loss(model, batch, img_cls[idx], img_dom[idx],
                                     tokens[choice], cap_cls[choice], cap_dom[choice])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))
            if log_every and (step + 1) % log_every == 0:
                log(f"  step {step + 1}/{recipe.steps}  loss {loss.item():.4f}  ({time.time() - start:.0f} s)")
    model.eval()
    log(f"Pretraining finished in {time.time() - start:.0f} s")
    return model


def _atomic_save(state_dict, path):
    os.makedirs(osp.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=osp.basename(path) + ".", suffix=".tmp", dir=osp.dirname(path))
    os.close(fd)
    try:
        torch.save(state_dict, tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the cache is meant to be shared
        os.replace(tmp, path)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)


def ensure_tiny_clip_weights(cache_dir, recipe=DEFAULT_RECIPE, force=False, log=print):
    """Path of the recipe's pretrained weights in `cache_dir`, training them first when missing."""
    path = cached_weights_path(cache_dir, recipe)
    if osp.isfile(path) and not force:
        return path
    log(f"No pretrained tiny CLIP at {path}: training it now ({recipe.steps} steps: about 2 minutes on "
        "2 idle CPU cores, longer on a busy machine; done once and cached).")
    model = pretrain_tiny_clip(recipe, log=log)
    _atomic_save({k: v.detach().clone() for k, v in model.state_dict().items()}, path)
    log(f"Saved the tiny CLIP weights to {path}")
    return path


# ----------------------------------------------------------------------------------------------
# Evaluation.
# ----------------------------------------------------------------------------------------------
@torch.no_grad()
def zero_shot_accuracy(model, pixels, labels, classnames, template=EVAL_TEMPLATE, batch_size=256):
    """Top-1 accuracy (in [0, 1]) of zero-shot classification with one prompt per class."""
    model.eval()
    tokens = clip.tokenize([template.format(c) for c in classnames], context_length=model.context_length)
    text = F.normalize(model.encode_text(tokens), dim=-1)
    correct = 0
    for start in range(0, len(pixels), batch_size):
        image = F.normalize(model.encode_image(pixels[start:start + batch_size]), dim=-1)
        correct += (image @ text.t()).argmax(1).eq(torch.as_tensor(labels[start:start + batch_size])).sum().item()
    return correct / max(1, len(pixels))
