"""Trainer life cycle: TrainerBase (models, checkpoints), SimpleTrainer (data, test, resume), TrainerX/XU.

Behaviour follows upstream Dassl 0.6.3 (log lines, checkpoint layout, automatic resume from OUTPUT_DIR),
with these fixes and additions: checkpoints are weights-only loadable and carry the RNG states (a resumed
run ends with the same weights as an uninterrupted one); `load_model` copes with `val_result=None`;
several named test sets are evaluated in one run; every run writes `results.json`.
"""
import datetime
import math
import os
import os.path as osp
import time
from collections import OrderedDict

import torch
from tqdm import tqdm

from dassl.data import DataManager
from dassl.errors import ConfigError, MissingFileError
from dassl.evaluation import build_evaluator
from dassl.utils import get_rng_state, load_checkpoint, save_checkpoint, set_rng_state, tolist_if_not
from dassl.utils.torchtools import check_checkpoint, restore_checkpoint

from .run_folder import find_resume_checkpoints
from .run_record import RunRecord


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite: the run stops and is never marked finished."""


class _NonFiniteWatch:
    """Remembers, on the loss's device, the first batch of an epoch whose loss was not finite.

    Checking every step with `if not torch.isfinite(loss)` would synchronise with the GPU each step;
    the flag is read only when the meters are printed and at the end of the epoch (before its
    checkpoint is written), so a collapsed run never saves weights or a finished results.json.
    """

    def __init__(self):
        self.first_bad = None

    def update(self, loss, batch_idx):
        if torch.is_tensor(loss):
            bad = ~torch.isfinite(loss.detach()).all()
        else:
            bad = torch.tensor(not math.isfinite(float(loss)))
        if self.first_bad is None:
            self.first_bad = torch.full((), -1, dtype=torch.long, device=bad.device)
        self.first_bad = torch.where((self.first_bad < 0) & bad, batch_idx, self.first_bad)

    def check(self, epoch, max_epoch, num_batches, meters):
        if self.first_bad is None or int(self.first_bad) < 0:
            return
        bad = [k for k, m in meters.items() if not math.isfinite(m.avg)]
        raise NonFiniteLossError(nonfinite_message(epoch, max_epoch, int(self.first_bad), num_batches,
                                                   ", ".join(bad) or "none of the logged terms"))


def nonfinite_message(epoch, max_epoch, batch_idx, num_batches, terms):
    return (
        f"Loss is infinite or NaN! At epoch {epoch + 1}/{max_epoch}, batch {batch_idx + 1}/{num_batches} "
        f"(terms not finite: {terms}). The run stops here: no checkpoint of this epoch is saved and "
        "results.json is not marked finished. Lower OPTIM.LR, check the loss weights, or use PREC fp32 "
        "to find the cause."
    )


class _RunningMean:
    """Running mean of per-step tensors kept on their device: the host only syncs when printing."""

    def __init__(self):
        self.sum = None
        self.last = None
        self.count = 0

    def update(self, value):
        value = value.detach() if torch.is_tensor(value) else torch.tensor(float(value))
        self.last = value
        self.sum = value if self.sum is None else self.sum + value
        self.count += 1

    @property
    def avg(self):
        return float(self.sum) / max(self.count, 1)


class TrainerBase:
    """Holds the registered models with their optimizers and schedulers."""

    def __init__(self):
        self._models = OrderedDict()
        self._optims = OrderedDict()
        self._scheds = OrderedDict()
        self._writer = None

    def register_model(self, name="model", model=None, optim=None, sched=None):
        if self.__dict__.get("_models") is None:
            raise AttributeError("Cannot assign model before super().__init__() call")
        if self.__dict__.get("_optims") is None:
            raise AttributeError("Cannot assign optim before super().__init__() call")
        if self.__dict__.get("_scheds") is None:
            raise AttributeError("Cannot assign sched before super().__init__() call")
        assert name not in self._models, f'Found duplicate model name "{name}"'
        self._models[name] = model
        self._optims[name] = optim
        self._scheds[name] = sched

    def replace_optim(self, name, optim, sched=None):
        """Give the registered model `name` another optimizer and scheduler (a subclass that trains
        on its own schedule, e.g. an attack on a trained model, after its parent's build_model)."""
        self.get_model_names(name)  # a registered name, or an error listing them
        self._optims[name] = optim
        self._scheds[name] = sched

    def get_model_names(self, names=None):
        names_real = list(self._models.keys())
        if names is None:
            return names_real
        names = tolist_if_not(names)
        for name in names:
            assert name in names_real, f'Unknown model name "{name}"; registered: {names_real}'
        return names

    def _loader_generators(self):
        """The torch Generators that drive the training loaders' shuffling and worker seeds."""
        loaders = {"train_x": getattr(self, "train_loader_x", None),
                   "train_u": getattr(self, "train_loader_u", None)}
        return {k: l.generator for k, l in loaders.items()
                if l is not None and getattr(l, "generator", None) is not None}

    def _extra_checkpoint_state(self):
        """What every checkpoint carries beyond the model: RNG states and the AMP scaler."""
        state = {
            "rng_state": get_rng_state(),
            "loader_rng_state": {k: g.get_state() for k, g in self._loader_generators().items()},
        }
        scaler = getattr(self, "scaler", None)
        if scaler is not None:
            state["grad_scaler"] = scaler.state_dict()
        return state

    def _restore_extra_checkpoint_state(self, checkpoint):
        if "rng_state" in checkpoint:
            set_rng_state(checkpoint["rng_state"])
        generators = self._loader_generators()
        for k, g_state in checkpoint.get("loader_rng_state", {}).items():
            if k in generators:
                generators[k].set_state(g_state)
        scaler = getattr(self, "scaler", None)
        if scaler is not None and "grad_scaler" in checkpoint:
            scaler.load_state_dict(checkpoint["grad_scaler"])

    def save_model(self, epoch, directory, is_best=False, val_result=None, model_name=""):
        extra = self._extra_checkpoint_state()
        for name in self.get_model_names():
            model_dict = self._models[name].state_dict()
            optim_dict = self._optims[name].state_dict() if self._optims[name] is not None else None
            sched_dict = self._scheds[name].state_dict() if self._scheds[name] is not None else None
            state = {
                "state_dict": model_dict,
                "epoch": epoch + 1,
                "optimizer": optim_dict,
                "scheduler": sched_dict,
                "val_result": val_result,
            }
            state.update(extra)
            save_checkpoint(
                state, osp.join(directory, name), is_best=is_best, model_name=model_name
            )

    def resume_model_if_exist(self, directory, required=False):
        """Restore every model from the newest checkpoint they can all load (run_folder's
        find_resume_checkpoints); return its epoch, 0 to train from scratch. `required`: a folder
        without any checkpoint is an error (--resume DIR), not a fresh start."""
        names = self.get_model_names()
        found, skipped = find_resume_checkpoints(directory, names) if names else (None, [])
        for path, why in skipped:
            print(f"Skipping checkpoint {path}: {why}")
        if found is None:
            if required and names:
                raise MissingFileError(
                    f"--resume {directory}: no readable checkpoint there (expected "
                    f"{directory}/<model>/model.pth.tar-<epoch> for the models {', '.join(names)}). "
                    "Pass the OUTPUT_DIR of an earlier run of this trainer, or drop --resume to "
                    "train from scratch."
                )
            print("No readable checkpoint left, train from scratch" if skipped
                  else "No checkpoint found, train from scratch")
            return 0
        print(f"Found checkpoint at {directory} (will resume training)")
        start_epoch = 0
        for name in names:
            start_epoch = restore_checkpoint(
                found[name], self._models[name], self._optims[name], self._scheds[name])
        # The extra state is identical in every model's file; read it from the last one.
        self._restore_extra_checkpoint_state(found[names[-1]])
        return start_epoch

    def load_model(self, directory, epoch=None):
        if not directory:
            print("Note that load_model() is skipped as no pretrained model is given")
            return
        names = self.get_model_names()
        model_file = "model-best.pth.tar"
        if epoch is not None:
            model_file = "model.pth.tar-" + str(epoch)
        for name in names:
            model_path = osp.join(directory, name, model_file)
            if not osp.exists(model_path):
                raise MissingFileError(
                    f'Model not found at "{model_path}". Expected the checkpoint layout '
                    f"<model-dir>/{name}/model.pth.tar-<epoch> (pass --load-epoch) or model-best.pth.tar."
                )
            checkpoint = check_checkpoint(load_checkpoint(model_path), model_path)
            val_result = checkpoint.get("val_result")
            shown = "None" if val_result is None else f"{val_result:.1f}"
            print(f"Load {model_path} to {name} (epoch={checkpoint['epoch']}, val_result={shown})")
            self._models[name].load_state_dict(checkpoint["state_dict"])

    def set_model_mode(self, mode="train", names=None):
        names = self.get_model_names(names)
        for name in names:
            if mode == "train":
                self._models[name].train()
            elif mode in ["test", "eval"]:
                self._models[name].eval()
            else:
                raise KeyError(f'Unknown model mode "{mode}"; use "train", "eval" or "test"')

    def update_lr(self, names=None):
        for name in self.get_model_names(names):
            if self._scheds[name] is not None:
                self._scheds[name].step()

    def detect_anomaly(self, loss):
        if not torch.isfinite(loss).all():
            raise NonFiniteLossError(nonfinite_message(
                getattr(self, "epoch", 0), getattr(self, "max_epoch", 0), getattr(self, "batch_idx", 0),
                getattr(self, "num_batches", 0), "loss"))

    def init_writer(self, log_dir):
        if self.__dict__.get("_writer") is None or self._writer is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is optional
                return
            print(f"Initialize tensorboard (log_dir={log_dir})")
            self._writer = SummaryWriter(log_dir=log_dir)

    def close_writer(self):
        if self._writer is not None:
            self._writer.close()

    def write_scalar(self, tag, scalar_value, global_step=None):
        if self._writer is not None:
            self._writer.add_scalar(tag, scalar_value, global_step)

    def train(self, start_epoch, max_epoch):
        self.start_epoch = start_epoch
        self.max_epoch = max_epoch
        self.before_train()
        for self.epoch in range(self.start_epoch, self.max_epoch):
            self.before_epoch()
            self.run_epoch()
            self.after_epoch()
        self.after_train()

    def before_train(self):
        pass

    def after_train(self):
        pass

    def before_epoch(self):
        pass

    def after_epoch(self):
        pass

    def run_epoch(self):
        raise NotImplementedError

    def test(self):
        raise NotImplementedError

    def parse_batch_train(self, batch):
        raise NotImplementedError

    def parse_batch_test(self, batch):
        raise NotImplementedError

    def forward_backward(self, batch):
        raise NotImplementedError

    def model_inference(self, input):
        raise NotImplementedError

    def model_zero_grad(self, names=None):
        for name in self.get_model_names(names):
            if self._optims[name] is not None:
                self._optims[name].zero_grad()

    def model_backward(self, loss):
        self.detect_anomaly(loss)
        loss.backward()

    def model_update(self, names=None):
        for name in self.get_model_names(names):
            if self._optims[name] is not None:
                self._optims[name].step()

    def model_backward_and_update(self, loss, names=None):
        self.model_zero_grad(names)
        self.model_backward(loss)
        self.model_update(names)


class SimpleTrainer(TrainerBase):
    """A trainer with one data manager, an evaluator, named test sets and a results.json record."""

    def __init__(self, cfg):
        super().__init__()
        self.check_cfg(cfg)
        if torch.cuda.is_available() and cfg.USE_CUDA:
            self.device = torch.device("cuda")
        else:
            self.device = torch.device("cpu")
        self.start_epoch = self.epoch = 0
        self.max_epoch = cfg.OPTIM.MAX_EPOCH
        self.output_dir = cfg.OUTPUT_DIR
        self.cfg = cfg
        self.record = RunRecord(cfg)
        self.last_test_results = OrderedDict()
        self.build_data_loader()
        self.record.set_num_classes(self.num_classes)
        self.build_model()
        self.evaluator = build_evaluator(cfg, lab2cname=self.lab2cname)
        self.best_result = -float("inf")

    def check_cfg(self, cfg):
        """Subclasses assert their config here (called before self.cfg exists, as upstream)."""

    def build_data_loader(self):
        dm = DataManager(self.cfg)
        self.train_loader_x = dm.train_loader_x
        self.train_loader_u = dm.train_loader_u
        self.val_loader = dm.val_loader
        self.test_loader = dm.test_loader
        self.test_loaders = dm.test_loaders
        self.num_classes = dm.num_classes
        self.num_source_domains = dm.num_source_domains
        self.lab2cname = dm.lab2cname
        self.dm = dm

    def build_model(self):
        raise NotImplementedError(
            "Our dassl ships no dassl.modeling backbones: a trainer must override build_model() "
            "(see trainers/coop.py for an example)."
        )

    def train(self):
        super().train(self.start_epoch, self.max_epoch)

    def before_train(self):
        directory = self.cfg.RESUME if self.cfg.RESUME else self.output_dir
        self.start_epoch = self.resume_model_if_exist(directory, required=bool(self.cfg.RESUME))
        self.record.keep_previous(self.start_epoch)
        # The config goes on record before the first checkpoint: a rerun with another config is
        # refused (run_folder) even when this one is killed before epoch 1 ends.
        self.record.save(finished=False)
        writer_dir = osp.join(self.output_dir, "tensorboard")
        os.makedirs(writer_dir, exist_ok=True)
        self.init_writer(writer_dir)
        self.time_start = time.time()

    def after_train(self):
        print("Finish training")
        do_test = not self.cfg.TEST.NO_TEST
        if do_test:
            if self.cfg.TEST.FINAL_MODEL == "best_val":
                print("Deploy the model with the best val performance")
                self.load_model(self.output_dir)
            else:
                print("Deploy the last-epoch model")
            self.test()
            self.record.set_final(dict(self.last_test_results))
        elapsed = round(time.time() - self.time_start)
        print(f"Elapsed: {datetime.timedelta(seconds=elapsed)}")
        self.record.save(finished=True)
        self.close_writer()

    def after_epoch(self):
        last_epoch = (self.epoch + 1) == self.max_epoch
        do_test = not self.cfg.TEST.NO_TEST
        meet_checkpoint_freq = (
            (self.epoch + 1) % self.cfg.TRAIN.CHECKPOINT_FREQ == 0
            if self.cfg.TRAIN.CHECKPOINT_FREQ > 0
            else False
        )
        if do_test and self.cfg.TEST.FINAL_MODEL == "best_val":
            curr_result = self.test(split="val")
            is_best = curr_result > self.best_result
            if is_best:
                self.best_result = curr_result
                self.save_model(
                    self.epoch, self.output_dir, val_result=curr_result, model_name="model-best.pth.tar"
                )
        eval_freq = self.cfg.TEST.EVAL_FREQ
        test_now = do_test and eval_freq > 0 and (self.epoch + 1) % eval_freq == 0 and not last_epoch
        if test_now:
            self.test()
        self.record.add_epoch(
            self.epoch + 1,
            train=getattr(self, "_epoch_train_summary", None),
            lr=self._current_lr_or_none(),
            test=dict(self.last_test_results) if test_now else None,
        )
        if meet_checkpoint_freq or last_epoch:
            self.save_model(self.epoch, self.output_dir)
        self.record.save(finished=False)

    def _current_lr_or_none(self):
        names = [n for n in self.get_model_names() if self._optims[n] is not None]
        return self.get_current_lr(names[:1]) if names else None

    def _loaders_for_split(self, split):
        """The (name, loader) pairs that test(split) evaluates."""
        if split is None:
            return list(self.test_loaders.items())
        if split == "val" and self.val_loader is not None:
            return [("val", self.val_loader)]
        return [("test", self.test_loader)]

    @torch.no_grad()
    def test(self, split=None):
        """Evaluate every named test set (split=None) or upstream's "val"/"test" split."""
        self.set_model_mode("eval")
        results = OrderedDict()
        first = None
        for name, loader in self._loaders_for_split(split):
            self.evaluator.reset()
            print(f"Evaluate on the *{name}* set")
            for batch in tqdm(loader, desc=name, leave=False, dynamic_ncols=True):
                input, label = self.parse_batch_test(batch)
                output = self.model_inference(input)
                self.evaluator.process(output, label)
            result = self.evaluator.evaluate()
            for k, v in result.items():
                self.write_scalar(f"{name}/{k}", v, self.epoch)
            entry = {k: float(v) for k, v in result.items()}
            entry["correct"] = int(self.evaluator._correct)
            entry["total"] = int(self.evaluator._total)
            results[name] = entry
            if first is None:
                first = list(result.values())[0]
        if split is None:
            self.last_test_results = results
        return first

    def model_inference(self, input):
        return self.model(input)

    def parse_batch_test(self, batch):
        return batch["img"].to(self.device), batch["label"].to(self.device)

    def get_current_lr(self, names=None):
        names = self.get_model_names(names)
        return self._optims[names[0]].param_groups[0]["lr"]

    # ---- per-epoch loop shared by TrainerX and TrainerXU ----
    def _run_batches(self, num_batches, next_batch):
        self.set_model_mode("train")
        meters = OrderedDict()
        batch_time_sum = data_time_sum = 0.0
        self.num_batches = num_batches
        watch = _NonFiniteWatch()
        end = time.time()
        for self.batch_idx in range(self.num_batches):
            batch = next_batch()
            data_time = time.time() - end
            loss_summary = self.forward_backward(*batch)
            if "loss" in loss_summary:
                watch.update(loss_summary["loss"], self.batch_idx)
            for k, v in loss_summary.items():
                meters.setdefault(k, _RunningMean()).update(v)
            batch_time = time.time() - end
            batch_time_sum += batch_time
            data_time_sum += data_time
            n_done = self.batch_idx + 1
            meet_freq = n_done % self.cfg.TRAIN.PRINT_FREQ == 0
            only_few_batches = self.num_batches < self.cfg.TRAIN.PRINT_FREQ
            if meet_freq or only_few_batches:
                watch.check(self.epoch, self.max_epoch, self.num_batches, meters)
                remaining = self.num_batches - n_done
                remaining += (self.max_epoch - self.epoch - 1) * self.num_batches
                eta = datetime.timedelta(seconds=int(batch_time_sum / n_done * remaining))
                fields = [
                    f"epoch [{self.epoch + 1}/{self.max_epoch}]",
                    f"batch [{n_done}/{self.num_batches}]",
                    f"time {batch_time:.3f} ({batch_time_sum / n_done:.3f})",
                    f"data {data_time:.3f} ({data_time_sum / n_done:.3f})",
                ]
                fields += [f"{k} {float(m.last):.4f} ({m.avg:.4f})" for k, m in meters.items()]
                lr = self._current_lr_or_none()
                if lr is not None:
                    fields.append(f"lr {lr:.4e}")
                fields.append(f"eta {eta}")
                print(" ".join(fields))
                step = self.epoch * self.num_batches + self.batch_idx
                for k, m in meters.items():
                    self.write_scalar("train/" + k, m.avg, step)
                if lr is not None:
                    self.write_scalar("train/lr", lr, step)
            end = time.time()
        watch.check(self.epoch, self.max_epoch, self.num_batches, meters)
        self._epoch_train_summary = {k: round(m.avg, 6) for k, m in meters.items()}


class TrainerX(SimpleTrainer):
    """A trainer over the labelled stream train_x only."""

    def run_epoch(self):
        loader = iter(self.train_loader_x)
        self._run_batches(len(self.train_loader_x), lambda: (next(loader),))

    def parse_batch_train(self, batch):
        input = batch["img"].to(self.device)
        label = batch["label"].to(self.device)
        domain = batch["domain"].to(self.device)
        return input, label, domain


class TrainerXU(SimpleTrainer):
    """A trainer over two streams, train_x and train_u; the shorter one restarts when exhausted."""

    def run_epoch(self):
        len_x = len(self.train_loader_x)
        len_u = len(self.train_loader_u)
        count_iter = self.cfg.TRAIN.COUNT_ITER
        if count_iter == "train_x":
            num_batches = len_x
        elif count_iter == "train_u":
            num_batches = len_u
        elif count_iter == "smaller_one":
            num_batches = min(len_x, len_u)
        else:
            raise ConfigError(
                f'TRAIN.COUNT_ITER must be "train_x", "train_u" or "smaller_one", got "{count_iter}"'
            )
        iters = {"x": iter(self.train_loader_x), "u": iter(self.train_loader_u)}
        loaders = {"x": self.train_loader_x, "u": self.train_loader_u}

        def draw(key):
            try:
                return next(iters[key])
            except StopIteration:
                iters[key] = iter(loaders[key])
                return next(iters[key])

        self._run_batches(num_batches, lambda: (draw("x"), draw("u")))

    def parse_batch_train(self, batch_x, batch_u):
        input_x = batch_x["img"].to(self.device)
        label_x = batch_x["label"].to(self.device)
        input_u = batch_u["img"].to(self.device)
        return input_x, label_x, input_u
