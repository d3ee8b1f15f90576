"""Loading CLIP for every trainer: OpenAI names, weight files, and the built-in tiny CLIPs.

One entry point, `load_clip_to_cpu(cfg)`, so that all trainers see the same float32, eval-mode
`clip.model.CLIP` whatever `MODEL.BACKBONE.NAME` names, and every failure (offline, missing file,
not a CLIP) says what to do instead of surfacing as a deep traceback.
"""
import difflib
import hashlib
import os
import os.path as osp
import socket
import urllib.error
import warnings
import zipfile

import clip
import torch
from clip.model import CLIP, build_model

from dassl.errors import ConfigError, UserError

from . import tiny_clip
from .precision import cast_clip, resolve_precision

__all__ = [
    "load_clip_to_cpu",
    "load_clip_file",
    "clip_from_state_dict",
    "build_random_clip",
    "RANDOM_ARCHITECTURES",
    "BUILTIN_PRETRAINED",
    "ClipLoadError",
    "check_input_size",
    "load_clip_for_trainer",
]

# Built-in names whose weights the project trains itself (cached in MODEL.CLIP.CACHE_DIR);
# `tiny-rn-seed<N>` is the same recipe pretrained from seed N.
BUILTIN_PRETRAINED = (tiny_clip.BACKBONE_NAME, f"{tiny_clip.BACKBONE_NAME}-seed<N>")
# Seconds without data before an OpenAI download is declared failed (offline machines).
DOWNLOAD_TIMEOUT_S = 30

# Keys every CLIP state dict has (the ones clip.model.build_model reads to infer the architecture).
_TEXT_KEYS = ("text_projection", "positional_embedding", "token_embedding.weight", "ln_final.weight")
_VISUAL_KEYS = ("visual.proj", "visual.attnpool.positional_embedding")


class ClipLoadError(UserError, RuntimeError):
    """CLIP weights could not be found or read; the message says how to fix it."""


# ----------------------------------------------------------------------------------------------
# Random architectures (tests, benchmarks): sizes as clip.model.CLIP arguments.
# ----------------------------------------------------------------------------------------------
def _tiny_rn_args():
    r = tiny_clip.DEFAULT_RECIPE
    return dict(embed_dim=r.embed_dim, image_resolution=r.image_resolution, vision_layers=tuple(r.vision_layers),
                vision_width=r.vision_width, vision_patch_size=None, context_length=r.context_length,
                transformer_width=r.transformer_width, transformer_heads=r.transformer_width // 64,
                transformer_layers=r.transformer_layers)


RANDOM_ARCHITECTURES = {
    "tiny-rn": _tiny_rn_args,
    # A ViT image encoder (vision width a multiple of 64: ViT heads = width // 64).
    "tiny-vit": lambda: dict(embed_dim=64, image_resolution=32, vision_layers=2, vision_width=64,
                             vision_patch_size=8, context_length=32, transformer_width=64,
                             transformer_heads=1, transformer_layers=2),
    # ViT-B/16's sizes, for memory and speed benchmarks.
    "vit-b16-shape": lambda: dict(embed_dim=512, image_resolution=224, vision_layers=12, vision_width=768,
                                  vision_patch_size=16, context_length=77, transformer_width=512,
                                  transformer_heads=8, transformer_layers=12),
}


def build_random_clip(name="tiny-rn", seed=0):
    """A CLIP with random (CLIP-initialised) weights, float32, eval mode, CPU.

    The caller's global RNG is left untouched; the same `seed` gives the same weights.
    """
    if name not in RANDOM_ARCHITECTURES:
        raise ValueError(f"Unknown random CLIP architecture {name!r}; choose one of {sorted(RANDOM_ARCHITECTURES)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CLIP(vocab_size=len(clip.clip._tokenizer.encoder), **RANDOM_ARCHITECTURES[name]())
    return model.float().eval()


# ----------------------------------------------------------------------------------------------
# State dicts and files.
# ----------------------------------------------------------------------------------------------
def _unwrap_state_dict(obj, source):
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ClipLoadError(
            f"{source} does not hold a state dict (a dict of tensors, possibly under the key "
            f"'state_dict') but a {type(obj).__name__}. Save the weights with torch.save(model.state_dict(), path)."
        )
    if obj and all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def clip_from_state_dict(state_dict, source="state dict"):
    """Build the CLIP that `state_dict` describes (float32, eval, CPU), keeping its exact values.

    `clip.model.build_model` infers the architecture but rounds the weights through fp16; the
    float32 values are loaded again on top so that fp32 checkpoints (the tiny CLIP) stay exact.
    """
    state_dict = _unwrap_state_dict(state_dict, source)
    missing = [k for k in _TEXT_KEYS if k not in state_dict]
    if not any(k in state_dict for k in _VISUAL_KEYS):
        missing.append(" or ".join(_VISUAL_KEYS))
    if missing:
        example = ", ".join(list(state_dict)[:5]) or "none"
        raise ClipLoadError(
            f"{source} is not a CLIP state dict: it lacks {missing} (its first keys: {example}). "
            "Give an OpenAI CLIP checkpoint, a state dict of clip.model.CLIP, or a built-in name "
            f"({', '.join(BUILTIN_PRETRAINED)})."
        )
    metadata = ("input_resolution", "context_length", "vocab_size")
    weights = {k: v.float() for k, v in state_dict.items() if k not in metadata}
    try:
        model = build_model(dict(state_dict)).float()
        model.load_state_dict(weights)
    except (RuntimeError, KeyError, AssertionError, ValueError) as err:
        raise ClipLoadError(
            f"{source} looks like a CLIP state dict but does not fit clip.model.CLIP ({type(err).__name__}: "
            f"{str(err).splitlines()[0]}). Note that CLIP infers attention heads as width // 64."
        ) from err
    return model.eval()


def _is_torchscript(path):
    """TorchScript archives are zip files with serialized code next to the tensors."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("/constants.pkl") or "/code/" in name for name in archive.namelist())


def load_clip_file(path):
    """CLIP from a TorchScript archive (OpenAI's .pt files) or a torch.save'd state dict."""
    path = osp.abspath(osp.expanduser(path))
    if not osp.isfile(path):
        raise ClipLoadError(
            f'CLIP weight file "{path}" does not exist. Set MODEL.BACKBONE.NAME to an existing file, '
            f"an OpenAI model name ({', '.join(clip.available_models())}) or a built-in name "
            f"({', '.join(BUILTIN_PRETRAINED)})."
        )
    if _is_torchscript(path):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*torch.jit.load.*deprecated", category=FutureWarning)
            try:
                state_dict = torch.jit.load(path, map_location="cpu").state_dict()
            except RuntimeError as err:
                raise ClipLoadError(
                    f'"{path}" looks like a TorchScript archive but cannot be read ({str(err).splitlines()[0]}). '
                    "Replace it with an intact copy."
                ) from err
    else:
        try:
            state_dict = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises several types for non-checkpoint files
            raise ClipLoadError(
                f'"{path}" is neither a TorchScript archive nor a state dict that torch.load(weights_only=True) '
                f"can read ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}). "
                "Give an OpenAI CLIP .pt file or a torch.save'd state dict of clip.model.CLIP."
            ) from err
    return clip_from_state_dict(state_dict, source=f'"{path}"')


# ----------------------------------------------------------------------------------------------
# OpenAI weights.
# ----------------------------------------------------------------------------------------------
def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _openai_weights_path(name, cache_dir):
    url = clip.clip._MODELS[name]
    filename, expected_sha = osp.basename(url), url.split("/")[-2]
    path = osp.join(cache_dir, filename)
    if osp.isfile(path):
        if _sha256(path) != expected_sha:
            raise ClipLoadError(
                f'"{path}" is not the published {name} file (its SHA256 differs from {expected_sha}; '
                f"an interrupted download?). Delete it to download again, or replace it with {url}."
            )
        return path
    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        return clip.clip._download(url, cache_dir)
    except (urllib.error.URLError, OSError, RuntimeError) as err:
        if osp.isfile(path):
            os.remove(path)  # never leave a partial file that would look cached next time
        raise ClipLoadError(
            f"Could not download CLIP {name} ({type(err).__name__}: {err}). On a machine without "
            f"internet, put the file {filename} (from {url}) into the folder {cache_dir} "
            "(set by MODEL.CLIP.CACHE_DIR), or set MODEL.BACKBONE.NAME to a local weight file."
        ) from err
    finally:
        socket.setdefaulttimeout(previous_timeout)


def load_clip_to_cpu(cfg):
    """The CLIP that `cfg.MODEL.BACKBONE.NAME` names: float32, eval mode, on the CPU."""
    name = str(cfg.MODEL.BACKBONE.NAME).strip()
    cache_dir = osp.abspath(osp.expanduser(cfg.MODEL.CLIP.CACHE_DIR))
    if name in clip.available_models():
        return load_clip_file(_openai_weights_path(name, cache_dir))
    tiny_seed = tiny_clip.parse_backbone_name(name)
    if tiny_seed is not None:
        path = tiny_clip.ensure_tiny_clip_weights(cache_dir, tiny_clip.recipe_for_seed(tiny_seed))
        return load_clip_file(path)
    if name in RANDOM_ARCHITECTURES:
        raise ClipLoadError(
            f"MODEL.BACKBONE.NAME {name!r} is a random-weight architecture for tests and benchmarks "
            "(trainers.clip_backbone.build_random_clip); it has no pretrained weights to load."
        )
    if osp.isfile(osp.expanduser(name)):
        return load_clip_file(name)
    close = difflib.get_close_matches(name, clip.available_models() + list(BUILTIN_PRETRAINED), n=1)
    hint = f' Did you mean "{close[0]}"?' if close else ""
    raise ClipLoadError(
        f"MODEL.BACKBONE.NAME {name!r} is neither an OpenAI CLIP name ({', '.join(clip.available_models())}), "
        f"a built-in name ({', '.join(BUILTIN_PRETRAINED)}) nor an existing weight file "
        f'(looked for "{osp.abspath(osp.expanduser(name))}").{hint}'
    )


def check_input_size(cfg, clip_model):
    """CLIP's positional embeddings fix the image size; a mismatch fails deep in the encoder otherwise."""
    resolution = clip_model.visual.input_resolution
    size = tuple(cfg.INPUT.SIZE)
    if size != (resolution, resolution):
        raise ConfigError(
            f"INPUT.SIZE is {size} but the CLIP backbone {cfg.MODEL.BACKBONE.NAME!r} takes "
            f"{resolution}x{resolution} images; set INPUT.SIZE ({resolution}, {resolution}) in the "
            "trainer config or on the command line"
        )


def load_clip_for_trainer(cfg, prec, device):
    """CLIP as every trainer wants it: loaded, its input size checked against INPUT.SIZE, and cast
    for the precision `prec` resolves to on `device`. Returns (clip_model, resolved precision)."""
    print(f"Loading CLIP (backbone: {cfg.MODEL.BACKBONE.NAME})")
    clip_model = load_clip_to_cpu(cfg)
    check_input_size(cfg, clip_model)
    prec = resolve_precision(prec, device)
    cast_clip(clip_model, prec, device)
    return clip_model, prec
