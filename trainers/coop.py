"""CoOp (Zhou et al., IJCV 2022): learn the context words of CLIP's class prompts, CLIP stays frozen.

Also holds the pieces every prompt-learning trainer of this project shares (input-size check,
freezing, checkpoint loading that drops the class-specific buffers), so CoCoOp and IP-CLIP behave
the same way in those respects.
"""
import os.path as osp

import torch
import torch.nn.functional as F
from torch import nn

from dassl.engine import TRAINER_REGISTRY, TrainerX
from dassl.errors import MissingFileError
from dassl.metrics import compute_accuracy
from dassl.optim import build_lr_scheduler, build_optimizer
from dassl.utils import load_checkpoint, load_pretrained_weights
from dassl.utils.torchtools import check_checkpoint

from .clip_backbone import load_clip_for_trainer
from .precision import autocast, backward_and_step, check_precision, make_grad_scaler
from .prompts import PromptTemplate
from .text_encoder import TextEncoder

__all__ = [
    "CoOp",
    "CoOpPromptLearner",
    "CoOpCLIP",
    "freeze_all_but",
    "load_prompt_learner_checkpoint",
]

# Buffers that depend on the class names: dropped on load so a model trained on one class set can be
# evaluated on another (upstream CoOp's behaviour).
CLASS_SPECIFIC_BUFFERS = ("token_prefix", "token_suffix")


def freeze_all_but(model, trainable):
    """Only `trainable`'s parameters learn; CLIP's image and text encoders stay frozen."""
    model.requires_grad_(False)
    trainable.requires_grad_(True)


def load_prompt_learner_checkpoint(trainer, directory, epoch=None):
    """Upstream CoOp's `load_model`: same files, class-specific buffers dropped, non-strict load."""
    if not directory:
        print("Note that load_model() is skipped as no pretrained model is given")
        return
    model_file = "model-best.pth.tar" if epoch is None else f"model.pth.tar-{epoch}"
    for name in trainer.get_model_names():
        model_path = osp.join(directory, name, model_file)
        if not osp.exists(model_path):
            raise MissingFileError(
                f'Model not found at "{model_path}"; expected <model-dir>/{name}/model.pth.tar-<epoch> '
                "(pass --load-epoch) or model-best.pth.tar"
            )
        checkpoint = check_checkpoint(load_checkpoint(model_path), model_path)
        state_dict = {
            key: value
            for key, value in checkpoint["state_dict"].items()
            if key.rsplit(".", 1)[-1] not in CLASS_SPECIFIC_BUFFERS
        }
        print(f'Loading weights to {name} from "{model_path}" (epoch = {checkpoint["epoch"]})')
        trainer._models[name].load_state_dict(state_dict, strict=False)


class CoOpPromptLearner(PromptTemplate):
    """A learned context (shared, or one per class with CSC) spliced into every class prompt."""

    def __init__(self, coop_cfg, classnames, clip_model):
        super().__init__(
            clip_model,
            classnames,
            n_ctx=coop_cfg.N_CTX,
            ctx_init=coop_cfg.CTX_INIT,
            class_token_position=coop_cfg.CLASS_TOKEN_POSITION,
        )
        dtype = clip_model.dtype
        if self.init_context is not None:
            print("Initializing a generic context")
            ctx = self.init_context.clone()
            initial = self.ctx_init
        else:
            shape = (self.n_ctx, self.ctx_dim)
            if coop_cfg.CSC:
                print("Initializing class-specific contexts")
                shape = (self.num_classes,) + shape
            else:
                print("Initializing a generic context")
            ctx = torch.empty(shape, dtype=dtype)
            nn.init.normal_(ctx, std=0.02)
            initial = " ".join(["X"] * self.n_ctx)
        print(f'Initial context: "{initial}"')
        print(f"Number of context words (tokens): {self.n_ctx}")
        self.ctx = nn.Parameter(ctx)

    def forward(self):
        return self.assemble(self.ctx)  # [C, L, D]


class CoOpCLIP(nn.Module):
    """CLIP with learned class prompts: logits = exp(logit_scale) * cos(image, class text)."""

    def __init__(self, coop_cfg, classnames, clip_model):
        super().__init__()
        self.prompt_learner = CoOpPromptLearner(coop_cfg, classnames, clip_model)
        self.image_encoder = clip_model.visual
        self.text_encoder = TextEncoder(clip_model)
        self.logit_scale = clip_model.logit_scale
        self.dtype = clip_model.dtype

    def forward(self, image):
        image_features = self.image_encoder(image.to(self.dtype))
        prompts = self.prompt_learner()
        text_features = self.text_encoder(prompts, self.prompt_learner.tokenized_prompts,
                                          max_length=self.prompt_learner.max_length)
        image_features = F.normalize(image_features, dim=-1)
        text_features = F.normalize(text_features, dim=-1)
        return self.logit_scale.exp() * image_features @ text_features.t()


@TRAINER_REGISTRY.register()
class CoOp(TrainerX):
    """Context Optimization; config keys TRAINER.COOP.{N_CTX, CSC, CTX_INIT, PREC, CLASS_TOKEN_POSITION}.

    Subclasses (CoCoOp) change the config node, the custom CLIP and the update step only.
    """

    cfg_node = "COOP"
    custom_clip = CoOpCLIP  # the nn.Module holding CLIP and the prompt learner

    def check_cfg(self, cfg):
        check_precision(cfg.TRAINER[self.cfg_node].PREC, f"TRAINER.{self.cfg_node}.PREC")

    def build_model(self):
        cfg = self.cfg
        node = cfg.TRAINER[self.cfg_node]
        classnames = self.dm.dataset.classnames

        clip_model, self.prec = load_clip_for_trainer(cfg, node.PREC, self.device)

        print("Building custom CLIP")
        self.model = self.custom_clip(node, classnames, clip_model)

        print("Turning off gradients in both the image and the text encoder")
        freeze_all_but(self.model, self.model.prompt_learner)
        self.report_trainable()
        if cfg.MODEL.INIT_WEIGHTS:
            load_pretrained_weights(self.model.prompt_learner, cfg.MODEL.INIT_WEIGHTS)

        self.model.to(self.device)
        self.optim = build_optimizer(self.model.prompt_learner, cfg.OPTIM)
        self.sched = build_lr_scheduler(self.optim, cfg.OPTIM)
        self.register_model("prompt_learner", self.model.prompt_learner, self.optim, self.sched)
        self.scaler = make_grad_scaler(self.prec, self.device)

    def report_trainable(self):
        """CoOp prints nothing here (upstream); CoCoOp lists the parameters to be updated."""

    def update(self, loss):
        """Upstream CoOp: the scaler under amp, else the engine's step with its NaN/Inf check."""
        if self.scaler is not None:
            backward_and_step(loss, self.optim, self.scaler)
        else:
            self.model_backward_and_update(loss)

    def forward_backward(self, batch):
        image, label = self.parse_batch_train(batch)
        with autocast(self.prec, self.device):
            output = self.model(image)
            loss = F.cross_entropy(output, label)
        self.update(loss)

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
