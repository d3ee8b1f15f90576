"""Style transplant (white-box, specific to IP-CLIP's design): a prompt's domain tokens come from the
image's own feature statistics, so an attacker who knows that computes them from a few unlabelled
authorized images (the donors) and puts them in place of the unauthorized image's own, keeping that
image's image tokens and image feature. If the protection lives in the domain tokens alone, the
transplant unlocks the model.

`donor_domain_tokens` and `transplant_logits` do it on any IPCLIPModel; the eval-only trainer
`IPCLIPStyleTransplant` (tools/attack.py plans it in RUN/attacks/transplant_<mode>_k<SHOTS>) scores
every test set of the run that way:

    python train.py --run-config RUN --trainer IPCLIPStyleTransplant --eval-only --model-dir RUN \\
        --load-epoch N --output-dir RUN/attacks/transplant_mean_k4 ATTACK.TRANSPLANT.SHOTS 4

ATTACK.TRANSPLANT.SHOTS donors are drawn from the authorized stream's train split
(attacker_data.donor_loader, ATTACK.DATA_SEED); ATTACK.TRANSPLANT.MODE "mean" gives every image the
donors' mean domain tokens, "each" scores every image with every donor's tokens and counts each
(image, donor) pair once (the accuracy is the mean over donors; `total` = images x donors).
"""
import torch

from dassl.engine import TRAINER_REGISTRY
from dassl.errors import ConfigError

from ...precision import autocast
from ..trainer import IPCLIP
from .attacker_data import donor_loader

__all__ = ["TRANSPLANT_MODES", "context_from_tokens", "donor_domain_tokens", "transplant_logits",
           "IPCLIPStyleTransplant"]

#: Values of ATTACK.TRANSPLANT.MODE.
TRANSPLANT_MODES = ("mean", "each")


def context_from_tokens(projector, domain_tokens, image_tokens):
    """domain [B, L, D] and image [B, M, D] tokens -> the prompt context [B, n_ctx, D] in the
    projector's layout (`projector.context`): the L domain tokens as often as it repeats them (ours
    once, the release's twice), then the M image tokens."""
    domain_slots = projector.n_context_tokens - projector.n_image_tokens
    repeats, rest = divmod(domain_slots, projector.n_domain_tokens)
    if rest or repeats < 1:
        raise ValueError(f"{type(projector).__name__}: {projector.n_context_tokens} context tokens are not "
                         f"whole copies of {projector.n_domain_tokens} domain tokens + "
                         f"{projector.n_image_tokens} image tokens")
    return torch.cat([domain_tokens] * repeats + [image_tokens.to(domain_tokens.dtype)], dim=1)


def donor_domain_tokens(model, images):
    """The domain tokens [K, L, D] the projector gives the donor images [K, 3, H, W]."""
    _, stats = model.tap.tap(images)
    domain_tokens, _ = model.projector(stats)
    return domain_tokens


def transplant_logits(model, images, donor_tokens):
    """logits [B, K, C]: each image [B, 3, H, W] scored with each donor's domain tokens [K, L, D] in
    place of its own, its own image tokens and image feature kept. One text-encoder call over the
    B x K x C prompts."""
    image_features, stats = model.tap.tap(images)
    _, image_tokens = model.projector(stats)
    batch, donors = images.shape[0], donor_tokens.shape[0]
    domain = donor_tokens.to(image_tokens.dtype).unsqueeze(0).expand(batch, -1, -1, -1).flatten(0, 1)
    own = image_tokens.unsqueeze(1).expand(-1, donors, -1, -1).flatten(0, 1)
    context = context_from_tokens(model.projector, domain, own)
    logits = model.score_context(image_features.repeat_interleave(donors, dim=0), context)["logits"]
    return logits.view(batch, donors, -1)


def check_mode(mode):
    if mode not in TRANSPLANT_MODES:
        raise ConfigError(f"ATTACK.TRANSPLANT.MODE must be one of {', '.join(TRANSPLANT_MODES)}, got {mode!r}")
    return mode


@TRAINER_REGISTRY.register()
class IPCLIPStyleTransplant(IPCLIP):
    """Eval-only: the protected model (train.py --eval-only --model-dir RUN) scored with transplanted
    domain tokens. The donors' tokens are computed once, at the first test, from the loaded model."""

    def check_cfg(self, cfg):
        super().check_cfg(cfg)
        check_mode(cfg.ATTACK.TRANSPLANT.MODE)

    def build_data_loader(self):
        super().build_data_loader()
        self.donor_loader = donor_loader(self.cfg, self.dm, self.cfg.ATTACK.TRANSPLANT.SHOTS)
        self.donor_tokens = None

    def train(self):
        raise ConfigError("IPCLIPStyleTransplant only evaluates a protected model: run it with --eval-only "
                          "--model-dir RUN --load-epoch N (tools/attack.py does)")

    def test(self, split=None):
        self.set_model_mode("eval")
        self.donor_tokens = self.compute_donor_tokens()
        return super().test(split)

    @torch.no_grad()
    def compute_donor_tokens(self):
        """[K, L, D] for MODE each, their mean [1, L, D] for MODE mean."""
        with autocast(self.prec, self.device):
            tokens = torch.cat([donor_domain_tokens(self.model, batch["img"].to(self.device))
                                for batch in self.donor_loader])
        print(f"Style transplant: domain tokens of {tokens.shape[0]} authorized donor image(s), "
              f"mode {self.cfg.ATTACK.TRANSPLANT.MODE}")
        if self.cfg.ATTACK.TRANSPLANT.MODE == "mean":
            return tokens.mean(dim=0, keepdim=True)
        return tokens

    def parse_batch_test(self, batch):
        images, labels = super().parse_batch_test(batch)
        # one label per (image, donor) pair, in transplant_logits' order
        return images, labels.repeat_interleave(self.donor_tokens.shape[0])

    def model_inference(self, input):
        with autocast(self.prec, self.device):
            return transplant_logits(self.model, input, self.donor_tokens).flatten(0, 1)
