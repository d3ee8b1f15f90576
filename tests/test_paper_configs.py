"""The paper configs (configs/trainers/IPCLIP/vit_b16*.yaml) run end to end without a GPU: IP-CLIP
on a random-weight ViT-B/16-shaped CLIP at 224 px, 2 + 2 images of a 3-class two-domain data set
(conftest.py `small_domains`), release-mode bank filling, one training step and an evaluation, per
scenario."""
import math

import pytest
import torch

from dassl.config import get_cfg_default, merge_config_file
from dassl.engine import build_trainer
from trainers import register_all
from trainers.clip_backbone import build_random_clip
from trainers.config import extend_cfg

SCENARIOS = ("target_specified", "target_free", "ownership", "authorization")


@pytest.fixture(scope="module")
def vit_b16_file(tmp_path_factory):
    """A random-weight CLIP with ViT-B/16's sizes, saved as a state dict (MODEL.BACKBONE.NAME)."""
    path = tmp_path_factory.mktemp("clip") / "random_vit_b16.pt"
    torch.save(build_random_clip("vit-b16-shape").state_dict(), path)
    return path


def paper_trainer(scenario, small_domains, backbone, out, *opts):
    register_all()
    root, split_dir = small_domains
    name = "vit_b16.yaml" if scenario == "target_specified" else f"vit_b16_{scenario}.yaml"
    cfg = merge_config_file(extend_cfg(get_cfg_default()), f"configs/trainers/IPCLIP/{name}")
    target = "sketch" if scenario == "target_specified" else "photo"
    cfg.merge_from_list([
        "DATASET.NAME", "DomainFolders", "DATASET.ROOT", str(root), "DATASET.SPLIT_DIR", str(split_dir),
        "DATASET.SOURCE_DOMAINS", "['photo']", "DATASET.TARGET_DOMAINS", f"['{target}']",
        "DATASET.TEST_SETS", "['authorized=source']",
        "MODEL.BACKBONE.NAME", str(backbone), "OUTPUT_DIR", str(out), "SEED", "1",
        "DATALOADER.TRAIN_X.BATCH_SIZE", "2", "DATALOADER.TEST.BATCH_SIZE", "4",
        "DATALOADER.NUM_WORKERS", "0", "OPTIM.MAX_EPOCH", "1", "USE_CUDA", "False", "VERBOSE", "False",
        "TRAINER.NAME", "IPCLIP", *opts,
    ])
    cfg.freeze()
    return build_trainer(cfg)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_paper_config_trains_and_evaluates_on_vit_b16_shape(scenario, small_domains, vit_b16_file,
                                                           tmp_path):
    trainer = paper_trainer(scenario, small_domains, vit_b16_file, tmp_path)
    model = trainer.model
    assert model.projector.n_context_tokens == 2 * 12 + 4  # [12 domain][the same 12][4 image]
    trainer.fill_banks()
    assert model.banks.unauthorized.filled.any()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    lr_steps = trainer.sched.last_epoch
    trainer.batch_idx, trainer.num_batches = 0, 2  # not the last batch: only a per-iteration step
    summary = trainer.forward_backward(*(next(iter(loader)) for loader in
                                         (trainer.train_loader_x, trainer.train_loader_u)))
    assert math.isfinite(float(summary["loss"]))
    assert trainer.sched.last_epoch == lr_steps + 1, "LR_STEP_EVERY iteration: stepped after the step"
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all(n.startswith("learner.projector.") for n in changed), sorted(changed)[:5]
    trainer.test()
    result = trainer.last_test_results["authorized"]
    photo_test = (small_domains[1] / "photo_test.txt").read_text().split("\n")
    assert result["total"] == len([line for line in photo_test if line.strip()])
