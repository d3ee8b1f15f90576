"""Train or evaluate one run: upstream Dassl/CoOp CLI, then `KEY VALUE` config overrides.

Config order: engine defaults -> project keys (trainers/config.py) -> --run-config (the config another
run recorded) -> --dataset-config-file -> --config-file -> CLI flags -> trailing KEY VALUE pairs -> freeze.
"""
import argparse
import os
import sys

import torch
import yaml
from yacs.config import CfgNode

from dassl.config import get_cfg_default, merge_config_file
from dassl.engine import build_trainer
from dassl.engine.run_record import read_results
from dassl.engine.run_folder import FINISHED, check_run_folder, clean_temporary_files
from dassl.engine.run_lock import RunLock
from dassl.errors import ConfigError, MissingFileError, UserError, user_message
from dassl.utils import collect_env_info, set_random_seed, setup_logger
from trainers import register_all
from trainers.config import extend_cfg
from trainers.ipclip.scenarios import get_scenario

#: The trainer whose runs carry their scenario as RUN_TAG.
IPCLIP_TRAINER = "IPCLIP"
#: Recorded keys --run-config leaves out: where that run wrote and resumed from is not this run's.
RUN_CONFIG_DROPPED = ("OUTPUT_DIR", "RESUME")


def print_args(args, cfg):
    print("***************")
    print("** Arguments **")
    print("***************")
    for key in sorted(args.__dict__.keys()):
        print(f"{key}: {args.__dict__[key]}")
    print("************")
    print("** Config **")
    print("************")
    print(cfg)


def reset_cfg(cfg, args):
    if args.root:
        cfg.DATASET.ROOT = args.root
    if args.output_dir:
        cfg.OUTPUT_DIR = args.output_dir
    if args.resume:
        cfg.RESUME = args.resume
    if args.seed is not None:
        cfg.SEED = args.seed
    if args.source_domains:
        cfg.DATASET.SOURCE_DOMAINS = args.source_domains
    if args.target_domains:
        cfg.DATASET.TARGET_DOMAINS = args.target_domains
    if args.transforms:
        cfg.INPUT.TRANSFORMS = args.transforms
    if args.trainer:
        cfg.TRAINER.NAME = args.trainer
    if args.backbone:
        cfg.MODEL.BACKBONE.NAME = args.backbone
    if args.head:
        cfg.MODEL.HEAD.NAME = args.head


def _merge_file(cfg, path, flag):
    if not os.path.isfile(path):
        raise MissingFileError(f"{flag} {path!r} does not exist (configs live under configs/datasets/ and "
                               "configs/trainers/<Trainer>/)")
    try:
        merge_config_file(cfg, path)
    except yaml.YAMLError as err:
        raise ConfigError(f"{flag} {path!r} is not valid YAML: {err}") from err
    except UserError:
        raise
    except (ValueError, KeyError, AssertionError) as err:  # yacs: unknown key, type mismatch
        raise ConfigError(f"{flag} {path!r}: {_yacs_message(err)}") from err


def _yacs_message(err):
    text = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
    return f"{text} (every key and its type: trainers/config.py, dassl/config/defaults.py, README config table)"


def merge_run_config(cfg, run_dir, output_dir):
    """Merge the config the run in `run_dir` recorded (its results.json), so that an attack on it (or a
    re-evaluation) builds the very model and data that run used; its own output goes elsewhere."""
    record = read_results(run_dir)
    if record is None or not isinstance(record.get("config"), dict):
        raise MissingFileError(f"--run-config {run_dir!r}: no results.json with a recorded config there; pass "
                               "the output folder of a run made by train.py")
    if not output_dir:
        raise ConfigError(f"--run-config {run_dir!r} needs --output-dir: this run writes into its own folder, "
                          "never into the recorded run's (e.g. RUN/attacks/<attack>)")
    if os.path.realpath(output_dir) == os.path.realpath(run_dir):
        raise ConfigError(f"--output-dir is the folder of the run --run-config reads ({run_dir!r}); give this "
                          "run its own folder, e.g. RUN/attacks/<attack>")
    recorded = {k: v for k, v in record["config"].items() if k not in RUN_CONFIG_DROPPED}
    try:
        cfg.merge_from_other_cfg(CfgNode(recorded))
    except (ValueError, KeyError, AssertionError) as err:  # yacs: a key this version lacks, a type
        raise ConfigError(f"--run-config {run_dir!r}: {_yacs_message(err)}") from err


def setup_cfg(args):
    cfg = get_cfg_default()
    extend_cfg(cfg)
    if args.run_config:
        merge_run_config(cfg, args.run_config, args.output_dir)
    if args.dataset_config_file:
        _merge_file(cfg, args.dataset_config_file, "--dataset-config-file")
    if args.config_file:
        _merge_file(cfg, args.config_file, "--config-file")
        if not cfg.CONFIG_NAME:
            cfg.CONFIG_NAME = os.path.splitext(os.path.basename(args.config_file))[0]
    reset_cfg(cfg, args)
    if len(args.opts) % 2:
        raise ConfigError(f"the KEY VALUE overrides after the flags are not pairs: {args.opts}")
    try:
        cfg.merge_from_list(args.opts)
    except (ValueError, KeyError, AssertionError) as err:
        raise ConfigError(f"command-line override: {_yacs_message(err)}") from err
    apply_scenario(cfg)
    cfg.freeze()
    return cfg


def apply_scenario(cfg):
    """What the scenario (TRAINER.IPCLIP.SCENARIO, trainers/ipclip/scenarios.py) decides beyond the
    trainer: an IP-CLIP run is tagged with it (RUN_TAG, which the tables read), and a run that names
    no DATASET.TEST_SETS is tested on the scenario's sets (a target-specified run without target
    domains keeps the dataset's own test split)."""
    scenario = get_scenario(cfg.TRAINER.IPCLIP.SCENARIO)
    if cfg.TRAINER.NAME == IPCLIP_TRAINER:
        if cfg.RUN_TAG and cfg.RUN_TAG != scenario.name:
            raise ConfigError(f"RUN_TAG {cfg.RUN_TAG!r} differs from TRAINER.IPCLIP.SCENARIO {scenario.name!r}: "
                              "an IP-CLIP run is tagged with its scenario; leave RUN_TAG empty")
        cfg.RUN_TAG = scenario.name
    if cfg.DATASET.TEST_SETS or (scenario.needs_target and not cfg.DATASET.TARGET_DOMAINS):
        return
    cfg.DATASET.TEST_SETS = tuple(scenario.test_sets)


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", type=str, default="", help="path to dataset root (DATASET.ROOT)")
    parser.add_argument("--output-dir", type=str, default="", help="output directory (OUTPUT_DIR)")
    parser.add_argument("--resume", type=str, default="", help="checkpoint directory to resume from")
    parser.add_argument("--seed", type=int, default=None, help="training seed (>= 0 fixes every RNG)")
    parser.add_argument("--source-domains", type=str, nargs="+", help="source (authorized) domains")
    parser.add_argument("--target-domains", type=str, nargs="+", help="target (unauthorized) domains")
    parser.add_argument("--transforms", type=str, nargs="+", help="data augmentation methods")
    parser.add_argument("--config-file", type=str, default="", help="trainer config file")
    parser.add_argument("--dataset-config-file", type=str, default="", help="dataset config file")
    parser.add_argument("--run-config", type=str, default="",
                        help="start from the config recorded by the run in this folder (its results.json), "
                             "e.g. to attack that run; needs --output-dir")
    parser.add_argument("--trainer", type=str, default="", help="name of trainer")
    parser.add_argument("--backbone", type=str, default="", help="name of CNN backbone")
    parser.add_argument("--head", type=str, default="", help="name of head")
    parser.add_argument("--eval-only", action="store_true", help="evaluation only")
    parser.add_argument("--model-dir", type=str, default="", help="load model from this directory")
    parser.add_argument("--load-epoch", type=int, help="load model weights at this epoch")
    parser.add_argument("--no-train", action="store_true", help="do not call trainer.train()")
    parser.add_argument("opts", default=None, nargs=argparse.REMAINDER,
                        help="modify config options using the command-line (KEY VALUE pairs)")
    return parser


def check_request(args, cfg):
    """Refuse runs that would record an untrained model as a finished result."""
    if not args.eval_only and not args.no_train and cfg.OPTIM.MAX_EPOCH < 1:
        raise ConfigError(
            f"OPTIM.MAX_EPOCH is {cfg.OPTIM.MAX_EPOCH}: training for no epoch would record an untrained "
            "model as a finished run. Set OPTIM.MAX_EPOCH >= 1, or evaluate a trained model with "
            "--eval-only --model-dir RUN_FOLDER."
        )


def check_eval_only(args, trainer):
    """--eval-only evaluates trained weights; only a trainer that learns nothing may go without them."""
    if args.eval_only and not args.model_dir and trainer.get_model_names():
        raise ConfigError(
            f"--eval-only without --model-dir would evaluate the untrained {trainer.cfg.TRAINER.NAME} "
            f"({', '.join(trainer.get_model_names())}) and record it as a finished run. Pass "
            "--model-dir RUN_FOLDER (and --load-epoch N) of a trained run."
        )


def main(argv=None):
    args = build_parser().parse_args(argv)
    register_all()
    cfg = setup_cfg(args)
    check_request(args, cfg)
    if os.path.exists(cfg.OUTPUT_DIR) and not os.path.isdir(cfg.OUTPUT_DIR):
        raise ConfigError(f"the output folder {cfg.OUTPUT_DIR!r} is a file; pass another --output-dir "
                          "(OUTPUT_DIR), or move that file away")
    # One process per run folder: a second run into it stops here with the holder's name.
    with RunLock(cfg.OUTPUT_DIR):
        return run(args, cfg)


def run(args, cfg):
    """The run of `cfg`, with its output folder locked."""
    # Before anything is written there: a finished run is not redone, another config's run is refused.
    defaults = extend_cfg(get_cfg_default())
    if not args.no_train and check_run_folder(cfg, defaults) == FINISHED:
        print(f"{cfg.OUTPUT_DIR} holds this run, finished, with the same config (results.json): "
              "nothing to do. Move the folder away to run it again.")
        return None
    leftovers = clean_temporary_files(cfg.OUTPUT_DIR)
    if cfg.SEED >= 0:
        print(f"Setting fixed seed: {cfg.SEED}")
        set_random_seed(cfg.SEED)
    setup_logger(cfg.OUTPUT_DIR)
    if leftovers:
        print(f"Removed {len(leftovers)} temporary file(s) of interrupted writes: {', '.join(leftovers)}")
    if torch.cuda.is_available() and cfg.USE_CUDA:
        torch.backends.cudnn.benchmark = True
    print_args(args, cfg)
    print("Collecting env info ...")
    print(f"** System info **\n{collect_env_info()}\n")
    trainer = build_trainer(cfg)
    check_eval_only(args, trainer)
    if args.eval_only:
        trainer.load_model(args.model_dir, epoch=args.load_epoch)
        trainer.test()
        trainer.record.set_final(dict(trainer.last_test_results), eval_only=True)
        trainer.record.save(finished=True)
        return trainer
    if not args.no_train:
        trainer.train()
    return trainer


def cli(argv=None):
    """main() for the command line: bad input (dassl.errors.UserError: the project's own error types)
    ends with its message and exit code 2, no traceback (set IPCLIP_TRACEBACK=1 to see one); any
    other exception is a bug and keeps its traceback."""
    from dassl.engine import NonFiniteLossError
    from dassl.engine.run_lock import RunFolderLocked

    try:
        main(argv)
    except RunFolderLocked as err:
        # Its own exit status: launchers count the run as running elsewhere, not as failed.
        print(f"error: {err}", file=sys.stderr)
        return RunFolderLocked.EXIT_STATUS
    except NonFiniteLossError as err:
        if os.environ.get("IPCLIP_TRACEBACK"):
            raise
        print(f"error: {err}", file=sys.stderr)
        return 1
    except UserError as err:
        if os.environ.get("IPCLIP_TRACEBACK"):
            raise
        print(f"error: {user_message(err)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(cli())
