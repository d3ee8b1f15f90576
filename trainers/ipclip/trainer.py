"""IP-CLIP trainer: keeps CLIP accurate on the authorized stream and useless on the unauthorized one.

A `TrainerXU`: `train_x` is the authorized stream, `train_u` the unauthorized one (both labelled).
Which images form each stream is the scenario's business (`TRAINER.IPCLIP.SCENARIO`); the step
below is the same for every scenario. Only the IP projector (and the style-enhancement branch when
`TRAIN_BRANCH`) learns; CLIP is frozen.
"""
import torch
from tqdm import tqdm

from dassl.engine import TRAINER_REGISTRY, TrainerXU
from dassl.errors import ConfigError
from dassl.optim import build_lr_scheduler, build_optimizer

from ..clip_backbone import load_clip_for_trainer
from ..precision import autocast, backward_and_step, check_precision, make_grad_scaler
from ..zsclip import class_prompts
from .anchor_teacher import teacher_loss
from .feature_restyle import FeatureRestyle
from .loss import IPCLIPLoss, IPCLIPLossWeights, kl_feature_scale
from .model import PROJECTOR_FORMS, IPCLIPModel
from .scenarios import SCENARIO_NAMES, get_scenario
from .streams import ScenarioStreams
from .style_bank import PROTOTYPE_MODES
from .style_branch import BRANCH_FORMS

#: Values of TRAINER.IPCLIP.BANK_FILL.
BANK_FILLS = ("test_pass", "release")
#: Values of TRAINER.IPCLIP.LR_STEP_EVERY.
LR_STEPS = ("epoch", "iteration")
#: The release's bank filling stops once every slot of a bank is more confident than this.
RELEASE_BANK_STOP_CONFIDENCE = 0.99
#: The config keys that choose between our form and the release's, with their allowed values.
FORM_KEYS = {"PROJECTOR": PROJECTOR_FORMS, "BRANCH": BRANCH_FORMS, "BANK_FILL": BANK_FILLS,
             "BANK_PROTOTYPE": PROTOTYPE_MODES, "LR_STEP_EVERY": LR_STEPS}


def loss_weights(cfg):
    """The loss weights of the configured scenario (TRAINER.IPCLIP.LOSS.<SCENARIO>)."""
    icfg = cfg.TRAINER.IPCLIP
    return IPCLIPLossWeights.from_cfg(icfg.LOSS[get_scenario(icfg.SCENARIO).loss_node])


def trainable_parameters(model, train_branch):
    """Freeze everything, then open the projector (and the branch): the only parameters that learn."""
    for p in model.parameters():
        p.requires_grad_(False)
    learn = list(model.projector.parameters())
    if model.learner.anchor_context is not None:
        learn.append(model.learner.anchor_context)
    if train_branch:
        learn += list(model.branch.parameters())
    for p in learn:
        p.requires_grad_(True)
    return learn


def training_loss(model, loss_fn, x_a, y_a, x_u, y_u, restyle=None):
    """IP-CLIP's loss on one authorized + one unauthorized batch -> (loss, detached terms).

    One forward over both streams: a single image-encoder call and a single text-encoder call.
    `restyle` (a FeatureRestyle): re-styles a share of the unauthorized images inside the encoder
    (and, with AUTHORIZED_SHARE, puts re-styled copies of authorized images in that stream).
    """
    n = x_a.shape[0]
    hook = None
    if restyle is not None and restyle.enabled:
        x_u, y_u, n_copies = restyle.with_authorized_copies(x_a, y_a, x_u, y_u)
        strength, global_shift = restyle.split_global(
            restyle.draw(n, x_u.shape[0], x_a.device, n_copies), n, n_copies)
        strength = restyle.split_moments(strength)
        hook = restyle.hook(strength, restyle.draw_partners(n, x_u.shape[0], x_a.device),
                            global_shift, n)
    out = model.encode(torch.cat([x_a, x_u]), restyle=hook)
    logits_a, logits_u = out["logits"][:n], out["logits"][n:]
    text_a, text_u = out["text"][:n], out["text"][n:]
    dom_a, dom_u = out["domain_tokens"][:n], out["domain_tokens"][n:]
    logits_ai, logits_ui = model.branch_logits(out["image"][:n], text_a, text_u)
    kl_scale = kl_feature_scale(loss_fn.weights.kl_form, model.logit_scale())
    logits_zs_a = model.anchor_logits(out["image"][:n]) if loss_fn.weights.w_zs > 0 else None
    loss, terms = loss_fn(logits_a, y_a, logits_u, y_u, logits_ai, logits_ui,
                          dom_a, dom_u, kl_scale * text_a, kl_scale * text_u, logits_zs_a)
    if model.teacher_learns:
        # The learned teacher's own objective; its gradient reaches its context alone.
        ce_teacher = teacher_loss(logits_zs_a, y_a)
        loss = loss + ce_teacher
        terms["ce_teacher"], terms["total"] = ce_teacher.detach(), loss.detach()
    terms["acc_a"] = (logits_a.argmax(dim=1) == y_a).float().mean() * 100
    terms["acc_u"] = (logits_u.argmax(dim=1) == y_u).float().mean() * 100
    return loss, terms


@TRAINER_REGISTRY.register()
class IPCLIP(TrainerXU):
    def check_cfg(self, cfg):
        icfg = cfg.TRAINER.IPCLIP
        check_precision(icfg.PREC, key="TRAINER.IPCLIP.PREC")
        if icfg.SCENARIO not in SCENARIO_NAMES:
            raise ConfigError(
                f"TRAINER.IPCLIP.SCENARIO must be one of {', '.join(SCENARIO_NAMES)}, got {icfg.SCENARIO!r}"
            )
        for key, allowed in FORM_KEYS.items():
            if icfg[key] not in allowed:
                raise ConfigError(f"TRAINER.IPCLIP.{key} must be one of {', '.join(allowed)}, got "
                                  f"{icfg[key]!r} (README, config table)")
        bx = cfg.DATALOADER.TRAIN_X.BATCH_SIZE
        bu = bx if cfg.DATALOADER.TRAIN_U.SAME_AS_X else cfg.DATALOADER.TRAIN_U.BATCH_SIZE
        if bx != bu:
            raise ConfigError(
                f"IP-CLIP pairs authorized and unauthorized images one to one, so the two streams need "
                f"the same batch size; got TRAIN_X {bx} and TRAIN_U {bu} "
                "(set DATALOADER.TRAIN_U.SAME_AS_X True)"
            )

    def build_data_loader(self):
        super().build_data_loader()
        self.streams = ScenarioStreams(self.cfg, self.dm)
        self.train_loader_x, self.train_loader_u = self.streams.train_loaders()

    def build_model(self):
        cfg = self.cfg
        icfg = cfg.TRAINER.IPCLIP
        classnames = self.dm.dataset.classnames
        clip_model, self.prec = load_clip_for_trainer(cfg, icfg.PREC, self.device)
        print("Building IP-CLIP")
        weights = loss_weights(cfg)
        zero_shot_prompts = class_prompts(cfg, classnames) if weights.w_zs > 0 else ()
        self.model = IPCLIPModel(
            clip_model, classnames,
            n_image_tokens=icfg.N_IMAGE_TOKENS, projector_hidden=icfg.PROJECTOR_HIDDEN,
            bank_size=icfg.BANK_SIZE, branch_hidden=icfg.BRANCH_HIDDEN,
            text_chunk_size=icfg.TEXT_CHUNK_SIZE, token_bound=icfg.TOKEN_BOUND,
            token_bound_type=icfg.TOKEN_BOUND_TYPE,
            image_token_init=icfg.IMAGE_TOKEN_INIT, domain_token_init=icfg.DOMAIN_TOKEN_INIT,
            projector_form=icfg.PROJECTOR, branch_form=icfg.BRANCH,
            bank_prototype=icfg.BANK_PROTOTYPE, stats_norm=icfg.STATS_NORM,
            stats_norm_min_std=icfg.STATS_NORM_MIN_STD, stats_norm_clip=icfg.STATS_NORM_CLIP,
            stats_norm_whiten_floor=icfg.STATS_NORM_WHITEN_FLOOR,
            stats_norm_whiten_layers=icfg.STATS_NORM_WHITEN_LAYERS,
            stats_distance=icfg.STATS_DISTANCE,
            layer_dropout=icfg.PROJECTOR_LAYER_DROPOUT,
            zero_shot_prompts=zero_shot_prompts,
            anchor_teacher=icfg.ANCHOR.TEACHER, anchor_ctx_init=icfg.ANCHOR.CTX_INIT,
        )
        params = trainable_parameters(self.model, icfg.TRAIN_BRANCH)
        print(f"Scenario: {icfg.SCENARIO}; domain tokens: {self.model.projector.n_domain_tokens}, "
              f"image tokens: {icfg.N_IMAGE_TOKENS}; trainable parameters: "
              f"{sum(p.numel() for p in params):,}")
        self.model.to(self.device)
        self.loss_fn = IPCLIPLoss(weights, anchor_only_where_right=icfg.ANCHOR.ONLY_WHERE_RIGHT)
        self.restyle = FeatureRestyle.from_cfg(icfg.FEATURE_RESTYLE, self.model.tap.num_layers)
        self.optim = build_optimizer(params, cfg.OPTIM)
        self.sched = build_lr_scheduler(self.optim, cfg.OPTIM)
        self.register_model("ip_learner", self.model.learner, self.optim, self.sched)
        self.scaler = make_grad_scaler(self.prec, self.device)

    def before_train(self):
        super().before_train()
        if self.start_epoch == 0:
            self.fit_standardizer()
            self.fill_banks()

    def before_epoch(self):
        super().before_epoch()
        self.loss_fn.set_epoch(self.epoch)

    @torch.no_grad()
    def fit_standardizer(self):
        """STATS_NORM authorized: one pass of the image encoder over the authorized stream (test
        transform) gives the mean and std the projector's inputs are measured against."""
        standardizer = self.model.projector.standardizer
        if standardizer is None:
            return
        loader, _ = self.streams.bank_loaders()
        mus, log_sigmas = [], []
        with autocast(self.prec, self.device):
            for batch in tqdm(loader, desc="input statistics (authorized)", leave=False):
                _, stats = self.model.tap.tap(batch["img"].to(self.device))
                mu, log_sigma = self.model.projector.squashed(stats, standardize=False)
                mus.append(mu)
                log_sigmas.append(log_sigma)
        standardizer.fit(torch.cat(mus), torch.cat(log_sigmas))
        print(f"Projector inputs standardised by {sum(m.shape[0] for m in mus)} authorized images")

    @torch.no_grad()
    def fill_banks(self):
        """One no-grad pass: the authorized bank keeps, per class, the K most confident correctly
        predicted authorized images; the unauthorized bank files images under their predicted class.

        BANK_FILL test_pass: each stream once, with the test transform. release: the training
        loaders (train augmentation), each stopped once every slot of its bank is more confident
        than RELEASE_BANK_STOP_CONFIDENCE (one host sync per batch, outside the training step).
        """
        self.set_model_mode("eval")
        banks = self.model.banks
        banks.reset()
        release = self.cfg.TRAINER.IPCLIP.BANK_FILL == "release"
        loader_a, loader_u = ((self.train_loader_x, self.train_loader_u) if release
                              else self.streams.bank_loaders())
        with autocast(self.prec, self.device):
            for batch in tqdm(loader_a, desc="style bank (authorized)", leave=False):
                out = self.model.encode(batch["img"].to(self.device))
                banks.file_authorized(out["image"], out["logits"], batch["label"].to(self.device))
                if release and banks.authorized.all_slots_above(RELEASE_BANK_STOP_CONFIDENCE):
                    break
            for batch in tqdm(loader_u, desc="style bank (unauthorized)", leave=False):
                out = self.model.encode(batch["img"].to(self.device))
                banks.file_unauthorized(out["image"], out["logits"])
                if release and banks.unauthorized.all_slots_above(RELEASE_BANK_STOP_CONFIDENCE):
                    break
        filled_a = banks.authorized.filled.any(dim=1).sum()
        filled_u = banks.unauthorized.filled.any(dim=1).sum()
        print(f"Style banks filled: authorized {int(filled_a)}/{banks.authorized.num_classes} classes, "
              f"unauthorized {int(filled_u)}/{banks.unauthorized.num_classes} classes")

    def parse_batch_train(self, batch_x, batch_u):
        return (
            batch_x["img"].to(self.device), batch_x["label"].to(self.device),
            batch_u["img"].to(self.device), batch_u["label"].to(self.device),
        )

    def compute_loss(self, x_a, y_a, x_u, y_u):
        return training_loss(self.model, self.loss_fn, x_a, y_a, x_u, y_u, self.restyle)

    def forward_backward(self, batch_x, batch_u):
        x_a, y_a, x_u, y_u = self.parse_batch_train(batch_x, batch_u)
        with autocast(self.prec, self.device):
            loss, terms = self.compute_loss(x_a, y_a, x_u, y_u)
        backward_and_step(loss, self.optim, self.scaler)
        every_step = self.cfg.TRAINER.IPCLIP.LR_STEP_EVERY == "iteration"
        if every_step or (self.batch_idx + 1) == self.num_batches:
            self.update_lr()
        summary = {"loss": terms.pop("total")}
        summary.update(terms)
        return summary

    def model_inference(self, input):
        with autocast(self.prec, self.device):
            return self.model(input)
