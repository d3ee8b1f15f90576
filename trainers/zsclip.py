"""Zero-shot CLIP: classify with hand-written prompts "a photo of a {class}.", nothing is trained.

Meant for `--eval-only` runs (upstream's ZeroshotCLIP). No model is registered, so there is no
checkpoint to save or load.
"""
import torch.nn.functional as F
from torch import nn

from dassl.engine import TRAINER_REGISTRY, TrainerBase, TrainerX
from dassl.errors import ConfigError

from .clip_backbone import load_clip_for_trainer
from .precision import autocast, check_precision
from .text_encoder import class_text_features

__all__ = ["ZeroshotCLIP", "ZeroShotClassifier", "PROMPT_TEMPLATES", "DEFAULT_TEMPLATE", "template_for",
           "class_prompts"]

DEFAULT_TEMPLATE = "a photo of a {}."

# Per-dataset templates (keyed by DATASET.NAME): CoOp's table plus this project's domain datasets.
PROMPT_TEMPLATES = {
    # Domain datasets used by IP-CLIP (any style: the prompt names only the object).
    "ToyDomains": DEFAULT_TEMPLATE,
    "DomainFolders": DEFAULT_TEMPLATE,
    "Office31": DEFAULT_TEMPLATE,
    "OfficeHome": DEFAULT_TEMPLATE,
    "miniDomainNet": DEFAULT_TEMPLATE,
    "DomainNet": DEFAULT_TEMPLATE,
    "VisDA17": DEFAULT_TEMPLATE,
    # CoOp's few-shot benchmarks.
    "OxfordPets": "a photo of a {}, a type of pet.",
    "OxfordFlowers": "a photo of a {}, a type of flower.",
    "FGVCAircraft": "a photo of a {}, a type of aircraft.",
    "DescribableTextures": "{} texture.",
    "EuroSAT": "a centered satellite photo of {}.",
    "StanfordCars": "a photo of a {}.",
    "Food101": "a photo of {}, a type of food.",
    "SUN397": "a photo of a {}.",
    "Caltech101": "a photo of a {}.",
    "UCF101": "a photo of a person doing {}.",
    "ImageNet": "a photo of a {}.",
    "ImageNetSketch": "a photo of a {}.",
    "ImageNetV2": "a photo of a {}.",
    "ImageNetA": "a photo of a {}.",
    "ImageNetR": "a photo of a {}.",
}


def template_for(cfg):
    """TRAINER.ZSCLIP.TEMPLATE if set, else the dataset's entry in PROMPT_TEMPLATES, else the default."""
    template = cfg.TRAINER.ZSCLIP.TEMPLATE or PROMPT_TEMPLATES.get(cfg.DATASET.NAME, DEFAULT_TEMPLATE)
    if template.count("{}") != 1:
        raise ConfigError(
            f"a zero-shot prompt template needs exactly one '{{}}' for the class name, got {template!r} "
            "(TRAINER.ZSCLIP.TEMPLATE)"
        )
    return template


def class_prompts(cfg, classnames):
    """The zero-shot prompt of every class, e.g. "a photo of a dog." (template_for)."""
    template = template_for(cfg)
    return [template.format(name.replace("_", " ")) for name in classnames]


class ZeroShotClassifier(nn.Module):
    """Frozen CLIP image encoder against fixed, normalised class text features."""

    def __init__(self, clip_model, prompts):
        super().__init__()
        self.image_encoder = clip_model.visual
        self.logit_scale = clip_model.logit_scale
        self.dtype = clip_model.dtype
        text_features = class_text_features(clip_model, prompts)
        self.register_buffer("text_features", text_features, persistent=False)
        self.requires_grad_(False)

    def forward(self, image):
        return self.classify(self.image_encoder(image.to(self.dtype)))

    def classify(self, image_features):
        """Logits [B, C] of image-encoder outputs [B, E] (for callers that already ran the encoder)."""
        image_features = F.normalize(image_features, dim=-1)
        text_features = self.text_features.to(image_features.dtype)
        return self.logit_scale.exp() * image_features @ text_features.t()


@TRAINER_REGISTRY.register()
class ZeroshotCLIP(TrainerX):
    """Zero-shot CLIP baseline; config keys TRAINER.ZSCLIP.{PREC, TEMPLATE}."""

    def check_cfg(self, cfg):
        check_precision(cfg.TRAINER.ZSCLIP.PREC, "TRAINER.ZSCLIP.PREC")

    def build_model(self):
        cfg = self.cfg
        classnames = self.dm.dataset.classnames

        clip_model, self.prec = load_clip_for_trainer(cfg, cfg.TRAINER.ZSCLIP.PREC, self.device)
        clip_model.to(self.device)

        prompts = class_prompts(cfg, classnames)
        print(f"Prompts: {prompts}")
        self.model = ZeroShotClassifier(clip_model, prompts)
        self.model.eval()

    def train(self):
        """Nothing to learn: a training run goes straight to the final evaluation (and results.json)."""
        print("ZeroshotCLIP has nothing to train; evaluating only")
        TrainerBase.train(self, 0, 0)

    def model_inference(self, input):
        with autocast(self.prec, self.device):
            return self.model(input)
