"""The IP-CLIP network: frozen CLIP + IP projector + style banks + style-enhancement branch.

One forward pass of `encode(images)`:
  frozen image encoder (hooks collect every layer's channel statistics)
  -> IP projector: L domain tokens + M image tokens per image
  -> prompts `[SOS][domain tokens][image tokens] <class> . [EOS]` for every (image, class) pair
  -> ONE batched, EOT-truncated text-encoder call over the B x C prompts
  -> cosine logits between each image and the text features of its own prompts.
"""
import torch
import torch.nn.functional as F
from torch import nn

from dassl.errors import ConfigError

from ..prompts import PromptTemplate
from ..text_encoder import TextEncoder
from .anchor_teacher import build_anchor_teacher
from .feature_hooks import RELEASE_SIGMA_SUM_EPS, VisualFeatureTap
from .ip_projector import IPProjector
from .ip_projector_release import ReleaseIPProjector
from .stats_standardizer import STATS_NORMS, StatsStandardizer
from .style_bank import IPStyleBanks
from .style_branch import build_style_branch

#: Values of TRAINER.IPCLIP.PROJECTOR.
PROJECTOR_FORMS = ("ours", "release")


class IPLearner(nn.Module):
    """Everything IP-CLIP owns (what is checkpointed): projector, banks (buffers), branch and, with
    a learned anchor teacher, its context."""

    def __init__(self, projector, banks, branch, anchor_context=None):
        super().__init__()
        self.projector = projector
        self.banks = banks
        self.branch = branch
        # The learned anchor teacher's context (anchor_teacher.LearnedContextTeacher), shared with it.
        self.anchor_context = anchor_context


class IPCLIPModel(nn.Module):
    def __init__(self, clip_model, classnames, n_image_tokens, projector_hidden, bank_size,
                 branch_hidden, text_chunk_size=0, token_bound=0.0, image_token_init="",
                 domain_token_init="", token_bound_type="coordinate", projector_form="ours",
                 branch_form="ours", bank_prototype="filled_slots", stats_norm="none",
                 stats_norm_min_std=0.1, stats_norm_clip=5.0, stats_norm_whiten_floor=0.0,
                 stats_norm_whiten_layers=(),
                 stats_distance=False, layer_dropout=0.0, zero_shot_prompts=(),
                 anchor_teacher="zero_shot", anchor_ctx_init="a photo of a"):
        super().__init__()
        if projector_form not in PROJECTOR_FORMS:
            raise ConfigError(f"TRAINER.IPCLIP.PROJECTOR must be one of {', '.join(PROJECTOR_FORMS)}, "
                              f"got {projector_form!r}")
        release_projector = projector_form == "release"
        if stats_norm not in STATS_NORMS:
            raise ConfigError(f"TRAINER.IPCLIP.STATS_NORM must be one of {', '.join(STATS_NORMS)}, "
                              f"got {stats_norm!r}")
        if release_projector and stats_norm != "none":
            raise ConfigError("TRAINER.IPCLIP.STATS_NORM applies to PROJECTOR ours only (the "
                              "release's projector reads the raw statistics); set STATS_NORM none.")
        if stats_norm_whiten_floor and stats_norm != "authorized":
            raise ConfigError("TRAINER.IPCLIP.STATS_NORM_WHITEN_FLOOR decorrelates the standardised "
                              "statistics: set TRAINER.IPCLIP.STATS_NORM authorized (got "
                              f"{stats_norm!r}) or STATS_NORM_WHITEN_FLOOR 0.0.")
        if stats_norm_whiten_layers and not stats_norm_whiten_floor:
            raise ConfigError("TRAINER.IPCLIP.STATS_NORM_WHITEN_LAYERS picks the layers that "
                              "STATS_NORM_WHITEN_FLOOR decorrelates: set the floor > 0, or the layers to ().")
        if stats_distance and stats_norm != "authorized":
            raise ConfigError("TRAINER.IPCLIP.STATS_DISTANCE measures the distance from the authorized "
                              "style in the standardised statistics: set TRAINER.IPCLIP.STATS_NORM "
                              f"authorized (got {stats_norm!r}) or STATS_DISTANCE False.")
        if layer_dropout and stats_norm != "authorized":
            raise ConfigError("TRAINER.IPCLIP.PROJECTOR_LAYER_DROPOUT replaces a layer's statistics by "
                              "the authorized images' mean, which is 0 only after standardising: set "
                              f"TRAINER.IPCLIP.STATS_NORM authorized (got {stats_norm!r}) or "
                              "PROJECTOR_LAYER_DROPOUT 0.0.")
        self.clip_model = clip_model
        # a plain object: hooks only, no parameters; the release's AdaIN adds its eps to the sum
        self.tap = (VisualFeatureTap(clip_model.visual, eps=RELEASE_SIGMA_SUM_EPS, eps_on_sum=True)
                    if release_projector else VisualFeatureTap(clip_model.visual))
        n_tapped = self.tap.num_layers
        if not all(isinstance(i, int) and 0 <= i < n_tapped for i in stats_norm_whiten_layers):
            raise ConfigError(f"TRAINER.IPCLIP.STATS_NORM_WHITEN_LAYERS must list tapped-layer indices in "
                              f"[0, {n_tapped - 1}] (this encoder has {n_tapped}), e.g. (0,); got "
                              f"{stats_norm_whiten_layers!r}")
        text_width = clip_model.ln_final.weight.shape[0]
        embed_dim = clip_model.text_projection.shape[1]
        # TOKEN_BOUND is in units of CLIP's own token embeddings (whatever the backbone): their
        # coordinate RMS for a coordinate bound, their mean norm for a norm bound.
        words = clip_model.token_embedding.weight.detach().float()
        unit = words.pow(2).mean().sqrt() if token_bound_type == "coordinate" else words.norm(dim=1).mean()
        kwargs = dict(n_image_tokens=n_image_tokens, hidden=projector_hidden or None,
                      token_bound=float(token_bound * unit) or None, bound_type=token_bound_type)
        if release_projector:
            projector = ReleaseIPProjector(self.tap.layer_dims, text_width, **kwargs)
        else:
            standardizer = (StatsStandardizer(self.tap.num_layers, max(self.tap.layer_dims),
                                              stats_norm_min_std, stats_norm_clip,
                                              whiten_floor=stats_norm_whiten_floor,
                                              whiten_layers=tuple(stats_norm_whiten_layers) or None)
                            if stats_norm == "authorized" else None)
            projector = IPProjector(self.tap.layer_dims, text_width, standardizer=standardizer,
                                    stats_distance=stats_distance, layer_dropout=layer_dropout,
                                    **kwargs)
        if image_token_init:
            projector.init_image_tokens(_word_embeddings(clip_model, image_token_init, n_image_tokens))
        if domain_token_init:
            projector.init_domain_tokens(_repeated_word_embeddings(
                clip_model, domain_token_init, projector.n_domain_tokens))
        banks = IPStyleBanks(len(classnames), bank_size, embed_dim, prototype_mode=bank_prototype)
        branch = build_style_branch(branch_form, embed_dim, hidden=branch_hidden or None)
        # The W_ZS anchor's teacher (anchor_teacher.py); None without zero-shot prompts (no anchor).
        self.teacher = build_anchor_teacher(anchor_teacher, clip_model, classnames, zero_shot_prompts,
                                            anchor_ctx_init)
        self.learner = IPLearner(projector, banks, branch,
                                 self.teacher.context if self.teacher_learns else None)
        self.template = PromptTemplate(clip_model, classnames, n_ctx=projector.n_context_tokens)
        self.text_encoder = TextEncoder(clip_model)
        self.text_chunk_size = text_chunk_size

    @property
    def projector(self):
        return self.learner.projector

    @property
    def banks(self):
        return self.learner.banks

    @property
    def branch(self):
        return self.learner.branch

    def logit_scale(self):
        return self.clip_model.logit_scale.exp()

    def encode(self, images, restyle=None):
        """images [B, 3, H, W] -> dict of logits [B, C], image [B, E], text [B, C, E] (both
        L2-normalised) and domain tokens [B, L, D]. `restyle`: see VisualFeatureTap.tap."""
        image_features, stats = self.tap.tap(images, restyle)
        context = self.projector.context(stats)
        out = self.score_context(image_features, context)
        out["domain_tokens"] = context[:, :self.projector.n_domain_tokens]
        return out

    def score_context(self, image_features, context):
        """Image features [B, E'] and each image's prompt context [B, n_ctx, D] -> dict of logits
        [B, C], image [B, E] and text [B, C, E] (both L2-normalised). encode's second half, on its
        own for contexts assembled elsewhere (the style-transplant attack)."""
        prompts = self.template.assemble(context, per_instance=True)  # [B, C, L, D]
        text = F.normalize(self.encode_prompts(prompts).float(), dim=-1)
        image = F.normalize(image_features.float(), dim=-1)
        logits = self.logit_scale() * torch.einsum("be,bce->bc", image, text)
        return {"logits": logits, "image": image, "text": text}

    def encode_prompts(self, prompts):
        """[B, C, L, D] prompt embeddings -> [B, C, E] text features, in ONE text-encoder call over
        all B x C prompts, cut after the longest EOT (known from the template: no host sync)."""
        batch, num_classes = prompts.shape[:2]
        tokenized = self.template.tokenized_prompts.repeat(batch, 1)
        text = self.text_encoder(prompts.flatten(0, 1), tokenized, truncate=True,
                                 chunk_size=self.text_chunk_size,
                                 max_length=self.template.max_length)
        return text.view(batch, num_classes, -1)

    @property
    def teacher_learns(self):
        return getattr(self.teacher, "learns", False)

    def anchor_logits(self, image):
        """The anchor teacher's logits [B, C] of L2-normalised image features [B, E]: detached for
        zero-shot CLIP, with a gradient into the learned teacher's context only."""
        if self.teacher is None:
            raise RuntimeError("IPCLIPModel was built without zero_shot_prompts; pass the class "
                               "prompts to use the anchor (LOSS.<SCENARIO>.W_ZS).")
        return self.teacher(image.float(), self.logit_scale(), self.text_encoder)

    def forward(self, images):
        return self.encode(images)["logits"]

    def branch_logits(self, image_a, text_a, text_u):
        """Self-enhanced features vs the authorized text features, cross-domain features vs the
        unauthorized text features (docs/method.md, style-enhancement branch)."""
        self_enhanced, cross_domain = self.branch(image_a, *self.banks.prototypes())
        scale = self.logit_scale()
        logits_ai = scale * torch.einsum("be,bce->bc", self_enhanced.float(), text_a)
        logits_ui = scale * torch.einsum("be,bce->bc", cross_domain.float(), text_u)
        return logits_ai, logits_ui


def _repeated_word_embeddings(clip_model, words, n_tokens):
    """Token embeddings [n_tokens, D] of `words` repeated as often as needed and cut to n_tokens
    (e.g. "." -> ". . . ." for a 4-stage ResNet, 12 dots for ViT-B/16): one value for any depth."""
    template = PromptTemplate(clip_model, ["x"], n_ctx=1, ctx_init=words)
    repeats = -(-n_tokens // template.n_ctx)
    return template.init_context.repeat(repeats, 1)[:n_tokens]


def _word_embeddings(clip_model, words, n_tokens):
    """Token embeddings [n_tokens, D] of `words` (e.g. "a photo of a"), which must tokenize to
    exactly n_tokens tokens: the image tokens then start as the zero-shot prompt."""
    template = PromptTemplate(clip_model, ["x"], n_ctx=1, ctx_init=words)
    if template.n_ctx != n_tokens:
        raise ConfigError(
            f"TRAINER.IPCLIP.IMAGE_TOKEN_INIT {words!r} is {template.n_ctx} tokens but "
            f"N_IMAGE_TOKENS is {n_tokens}; make them equal (or leave IMAGE_TOKEN_INIT empty)"
        )
    return template.init_context
