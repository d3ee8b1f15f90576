"""CoCoOp (Zhou et al., CVPR 2022): CoOp's context shifted per image by a small meta-net.

Every image gets its own prompts, so a step encodes B x C prompts. Upstream loops over the images
(one text-encoder call each, hence batch size 1 in its configs); here all B x C prompts go through
one truncated text-encoder call, optionally in chunks of TRAINER.COCOOP.TEXT_CHUNK_SIZE prompts to
cap memory.
"""
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from dassl.engine import TRAINER_REGISTRY
from dassl.errors import ConfigError

from .coop import CoOp
from .precision import backward_and_step
from .prompts import PromptTemplate
from .text_encoder import TextEncoder

__all__ = ["CoCoOp", "CoCoOpPromptLearner", "CoCoOpCLIP"]


class CoCoOpPromptLearner(PromptTemplate):
    """A generic learned context plus a per-image shift from the meta-net: prompts [B, C, L, D]."""

    def __init__(self, cocoop_cfg, classnames, clip_model):
        super().__init__(clip_model, classnames, n_ctx=cocoop_cfg.N_CTX, ctx_init=cocoop_cfg.CTX_INIT)
        dtype = clip_model.dtype
        if self.init_context is not None:
            ctx = self.init_context.clone()
            initial = self.ctx_init
        else:
            ctx = torch.empty(self.n_ctx, self.ctx_dim, dtype=dtype)
            nn.init.normal_(ctx, std=0.02)
            initial = " ".join(["X"] * self.n_ctx)
        print(f'Initial context: "{initial}"')
        print(f"Number of context words (tokens): {self.n_ctx}")
        self.ctx = nn.Parameter(ctx)

        vis_dim = clip_model.visual.output_dim
        hidden = vis_dim // 16
        if hidden < 1:
            raise ValueError(f"CoCoOp's meta-net needs an image feature size >= 16, got {vis_dim}")
        self.meta_net = nn.Sequential(
            OrderedDict(
                [
                    ("linear1", nn.Linear(vis_dim, hidden)),
                    ("relu", nn.ReLU(inplace=True)),
                    ("linear2", nn.Linear(hidden, self.ctx_dim)),
                ]
            )
        ).to(dtype)

    def forward(self, image_features):
        """image_features: L2-normalised [B, vis_dim] -> prompts [B, C, L, D]."""
        shift = self.meta_net(image_features.to(self.ctx.dtype))  # [B, D]
        ctx = self.ctx.unsqueeze(0) + shift.unsqueeze(1)  # [B, n_ctx, D]
        return self.assemble(ctx, per_instance=True)


class CoCoOpCLIP(nn.Module):
    """CLIP with instance-conditional prompts; forward returns logits [B, C]."""

    def __init__(self, cocoop_cfg, classnames, clip_model):
        super().__init__()
        self.prompt_learner = CoCoOpPromptLearner(cocoop_cfg, classnames, clip_model)
        self.image_encoder = clip_model.visual
        self.text_encoder = TextEncoder(clip_model)
        self.logit_scale = clip_model.logit_scale
        self.dtype = clip_model.dtype
        chunk_size = cocoop_cfg.TEXT_CHUNK_SIZE
        if not isinstance(chunk_size, int) or chunk_size < 0:
            raise ConfigError(
                f"TRAINER.COCOOP.TEXT_CHUNK_SIZE must be an int >= 0 (0 = encode all prompts at once), "
                f"got {chunk_size!r}"
            )
        self.text_chunk_size = chunk_size

    def forward(self, image):
        image_features = F.normalize(self.image_encoder(image.to(self.dtype)), dim=-1)
        prompts = self.prompt_learner(image_features)  # [B, C, L, D]
        batch, num_classes, length, width = prompts.shape
        tokenized = self.prompt_learner.tokenized_prompts.repeat(batch, 1)  # [B * C, L]
        text_features = self.text_encoder(
            prompts.reshape(batch * num_classes, length, width),
            tokenized,
            truncate=True,
            chunk_size=self.text_chunk_size,
            max_length=self.prompt_learner.max_length,
        )
        text_features = F.normalize(text_features, dim=-1).view(batch, num_classes, -1)
        logits = torch.einsum("be,bce->bc", image_features.to(text_features.dtype), text_features)
        return self.logit_scale.exp() * logits


@TRAINER_REGISTRY.register()
class CoCoOp(CoOp):
    """Conditional Context Optimization; config keys TRAINER.COCOOP.{N_CTX, CTX_INIT, PREC, TEXT_CHUNK_SIZE}.

    CoOp's life cycle with CoCoOp's model; the update has no NaN/Inf check (as upstream CoCoOp).
    """

    cfg_node = "COCOOP"
    custom_clip = CoCoOpCLIP

    def report_trainable(self):
        enabled = sorted(name for name, p in self.model.named_parameters() if p.requires_grad)
        print(f"Parameters to be updated: {enabled}")

    def update(self, loss):
        backward_and_step(loss, self.optim, self.scaler)
