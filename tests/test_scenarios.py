"""trainers/ipclip/scenarios.py: the one definition of each scenario, and the places that read it."""
import pytest

import train
from dassl.config import get_cfg_default
from tools import parse_results as pr
from trainers.config import extend_cfg
from trainers.ipclip.scenarios import SCENARIO_NAMES, SCENARIOS, cli_test_sets, get_scenario


def test_every_scenario_has_its_loss_node_streams_and_metrics():
    cfg = extend_cfg(get_cfg_default())
    for name, scenario in SCENARIOS.items():
        assert scenario.loss_node in cfg.TRAINER.IPCLIP.LOSS, name
        assert len(scenario.streams) == 2 and scenario.headline in ("w", "d", "o")
        assert pr.HEADLINE_METRIC[name] == scenario.headline and pr.ROLE_TEXT[name] == scenario.role_text
    assert SCENARIO_NAMES == pr.SCENARIOS


def test_unknown_scenario_names_the_known_ones():
    with pytest.raises(ValueError, match="expected one of target_specified, target_free, ownership"):
        get_scenario("target-free")


def test_pair_folders():
    assert get_scenario("target_specified").pair_folder("amazon", "webcam") == "amazon_webcam"
    assert get_scenario("ownership").pair_folder("amazon", "amazon") == "amazon_ownership"


def test_roles_of_each_scenario():
    sets = ["authorized", "unauthorized", "photo", "sketch", "photo_wm", "sketch_wm"]
    assert get_scenario("target_specified").roles(sets, ["photo"]) == (("authorized",), ("unauthorized",))
    assert get_scenario("ownership").roles(sets, ["photo"]) == (("authorized",), ("unauthorized",))
    assert get_scenario("target_free").roles(["authorized", "photo", "sketch", "clipart"], ["photo"]) == (
        ("authorized",), ("sketch", "clipart"))
    assert get_scenario("authorization").roles(sets, ["photo"]) == (
        ("photo_wm",), ("authorized", "unauthorized", "photo", "sketch", "sketch_wm"))
    assert get_scenario("ownership").roles(["authorized"], ["photo"]) is None  # u is missing


def _cfg(*opts, target=("sketch",)):
    cfg = extend_cfg(get_cfg_default())
    cfg.DATASET.SOURCE_DOMAINS = ["photo"]
    cfg.DATASET.TARGET_DOMAINS = list(target)
    cfg.merge_from_list(list(opts))
    train.apply_scenario(cfg)
    return cfg


@pytest.mark.parametrize("name", SCENARIO_NAMES)
def test_a_run_without_test_sets_gets_its_scenario_s(name):
    cfg = _cfg("TRAINER.IPCLIP.SCENARIO", name)
    assert tuple(cfg.DATASET.TEST_SETS) == get_scenario(name).test_sets
    # The command-line form gives the same list.
    explicit = _cfg("TRAINER.IPCLIP.SCENARIO", name, "DATASET.TEST_SETS", cli_test_sets(get_scenario(name).test_sets))
    assert tuple(explicit.DATASET.TEST_SETS) == get_scenario(name).test_sets


def test_explicit_test_sets_win_and_a_run_without_target_keeps_the_dataset_split():
    cfg = _cfg("TRAINER.IPCLIP.SCENARIO", "ownership", "DATASET.TEST_SETS", "['clean=source']")
    assert list(cfg.DATASET.TEST_SETS) == ["clean=source"]
    assert list(_cfg(target=()).DATASET.TEST_SETS) == []
    with pytest.raises(ValueError, match="unknown IP-CLIP scenario 'nope'"):
        _cfg("TRAINER.IPCLIP.SCENARIO", "nope")
