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

from dassl.engine import TRAINER_REGISTRY, TrainerX
from dassl.metrics import compute_accuracy
from dassl.optim import build_lr_scheduler, build_optimizer
from dassl.utils import load_pretrained_weights

from .clip_backbone import load_clip_for_trainer
from .coop import freeze_all_but, load_prompt_learner_checkpoint
from .precision import autocast, backward_and_step, check_precision, make_grad_scaler
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
            raise ValueError(
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
class CoCoOp(TrainerX):
    """Conditional Context Optimization; config keys TRAINER.COCOOP.{N_CTX, CTX_INIT, PREC, TEXT_CHUNK_SIZE}."""

    def check_cfg(self, cfg):
        check_precision(cfg.TRAINER.COCOOP.PREC, "TRAINER.COCOOP.PREC")

    def build_model(self):
        cfg = self.cfg
        classnames = self.dm.dataset.classnames

        clip_model, self.prec = load_clip_for_trainer(cfg, cfg.TRAINER.COCOOP.PREC, self.device)

        print("Building custom CLIP")
        self.model = CoCoOpCLIP(cfg.TRAINER.COCOOP, classnames, clip_model)

        print("Turning off gradients in both the image and the text encoder")
        freeze_all_but(self.model, self.model.prompt_learner)
        enabled = sorted(name for name, p in self.model.named_parameters() if p.requires_grad)
        print(f"Parameters to be updated: {enabled}")
        if cfg.MODEL.INIT_WEIGHTS:
            load_pretrained_weights(self.model.prompt_learner, cfg.MODEL.INIT_WEIGHTS)

        self.model.to(self.device)
        self.optim = build_optimizer(self.model.prompt_learner, cfg.OPTIM)
        self.sched = build_lr_scheduler(self.optim, cfg.OPTIM)
        self.register_model("prompt_learner", self.model.prompt_learner, self.optim, self.sched)
        self.scaler = make_grad_scaler(self.prec, self.device)

    def forward_backward(self, batch):
        image, label = self.parse_batch_train(batch)
        with autocast(self.prec, self.device):
            output = self.model(image)
            loss = F.cross_entropy(output, label)
        backward_and_step(loss, self.optim, self.scaler)

        # Tensors, not floats: the engine's meters sync with the GPU only when they print.
        loss_summary = {"loss": loss.detach(), "acc": compute_accuracy(output.detach(), label)[0]}
        if (self.batch_idx + 1) == self.num_batches:
            self.update_lr()
        return loss_summary

    def model_inference(self, input):
        with autocast(self.prec, self.device):
            return self.model(input)

    def parse_batch_train(self, batch):
        return batch["img"].to(self.device), batch["label"].to(self.device)

    def load_model(self, directory, epoch=None):
        load_prompt_learner_checkpoint(self, directory, epoch)
