"""StyleBank: vectorised per-class top-K against a per-sample Python reference."""
import io

import pytest
import torch

from trainers.ipclip.style_bank import (IPStyleBanks, StyleBank, authorized_candidates,
                                        unauthorized_candidates)


class ReferenceBank:
    """One sample at a time: a candidate enters its class's sorted list after every entry of equal
    or higher confidence, and the list is cut to K (so it only displaces strictly lower ones)."""

    def __init__(self, num_classes, slots):
        self.entries = [[] for _ in range(num_classes)]
        self.slots = slots

    def update(self, features, confidence, classes, accept):
        for n in range(len(features)):
            if not accept[n]:
                continue
            entries = self.entries[int(classes[n])]
            conf = float(confidence[n])
            position = sum(1 for c, _ in entries if c >= conf)
            entries.insert(position, (conf, features[n].clone()))
            del entries[self.slots:]

    def assert_equal(self, bank):
        for c, entries in enumerate(self.entries):
            for k in range(bank.slots):
                if k < len(entries):
                    assert bank.confidence[c, k] == entries[k][0], (c, k)
                    assert torch.equal(bank.features[c, k], entries[k][1]), (c, k)
                else:
                    assert bank.confidence[c, k] == float("-inf"), (c, k)
                    assert bank.features[c, k].abs().sum() == 0, (c, k)


def random_candidates(g, n, num_classes, feat_dim, levels=None):
    features = torch.randn(n, feat_dim, generator=g)
    if levels is None:
        confidence = torch.rand(n, generator=g)
    else:  # few distinct values: many ties
        confidence = torch.tensor(levels)[torch.randint(len(levels), (n,), generator=g)]
    classes = torch.randint(num_classes, (n,), generator=g)
    accept = torch.rand(n, generator=g) < 0.7
    return features, confidence, classes, accept


@pytest.mark.parametrize("levels", [None, [0.25, 0.5, 0.75]])
@pytest.mark.parametrize("slots", [1, 3, 12])  # 12: more slots than any class receives
def test_successive_updates_match_per_sample_reference(levels, slots):
    g = torch.Generator().manual_seed(slots)
    num_classes, feat_dim = 5, 4
    bank = StyleBank(num_classes, slots, feat_dim)
    reference = ReferenceBank(num_classes, slots)
    for n in [7, 1, 0, 9, 4]:
        batch = random_candidates(g, n, num_classes, feat_dim, levels)
        # class 4 never gets a candidate
        batch[3][batch[2] == 4] = False
        bank.update(*batch)
        reference.update(*batch)
        reference.assert_equal(bank)
    assert not bank.filled[4].any()


def test_ties_keep_existing_entries_then_lower_candidate_index():
    bank = StyleBank(num_classes=1, slots=2, feat_dim=1)
    same = torch.tensor([0.5, 0.5])
    bank.update(torch.tensor([[1.0], [2.0]]), same, torch.tensor([0, 0]), torch.tensor([True, True]))
    bank.update(torch.tensor([[3.0], [4.0]]), same, torch.tensor([0, 0]), torch.tensor([True, True]))
    assert bank.features[0, :, 0].tolist() == [1.0, 2.0]
    bank.update(torch.tensor([[5.0], [6.0], [7.0]]), torch.tensor([0.4, 0.9, 0.9]),
                torch.tensor([0, 0, 0]), torch.tensor([True, True, True]))
    assert bank.features[0, :, 0].tolist() == [6.0, 7.0]


def test_minus_inf_and_nan_confidences_are_ignored():
    bank = StyleBank(num_classes=2, slots=2, feat_dim=1)
    bank.update(torch.ones(3, 1), torch.tensor([float("-inf"), float("nan"), 0.3]),
                torch.tensor([0, 0, 1]), torch.ones(3, dtype=torch.bool))
    assert bank.filled.tolist() == [[False, False], [True, False]]


def test_prototypes_average_filled_slots_only():
    bank = StyleBank(num_classes=3, slots=4, feat_dim=2)
    bank.update(torch.tensor([[2.0, 0.0], [4.0, 2.0], [9.0, 9.0]]), torch.tensor([0.9, 0.8, 0.7]),
                torch.tensor([0, 0, 2]), torch.ones(3, dtype=torch.bool))
    proto, has_proto = bank.prototypes()
    # class 0: mean of two filled slots (the release would divide by 4 slots: [1.5, 0.5])
    assert proto.tolist() == [[3.0, 1.0], [0.0, 0.0], [9.0, 9.0]]
    assert has_proto.tolist() == [True, False, True]


def test_state_dict_round_trip_with_weights_only_load():
    g = torch.Generator().manual_seed(0)
    banks = IPStyleBanks(num_classes=4, slots=2, feat_dim=3)
    banks.authorized.update(*random_candidates(g, 10, 4, 3))
    banks.unauthorized.update(*random_candidates(g, 10, 4, 3))
    buffer = io.BytesIO()
    torch.save(banks.state_dict(), buffer)
    buffer.seek(0)
    restored = IPStyleBanks(num_classes=4, slots=2, feat_dim=3)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    assert set(banks.state_dict()) == {"authorized.features", "authorized.confidence",
                                       "unauthorized.features", "unauthorized.confidence"}
    for name, value in banks.state_dict().items():
        assert torch.equal(restored.state_dict()[name], value), name


def test_to_moves_buffers_and_updates_follow_the_bank_dtype():
    bank = StyleBank(num_classes=3, slots=2, feat_dim=4).to(torch.float64)
    assert bank.features.dtype == bank.confidence.dtype == torch.float64
    bank.update(torch.randn(5, 4), torch.rand(5), torch.tensor([0, 1, 2, 0, 1]),
                torch.ones(5, dtype=torch.bool))
    assert bank.features.dtype == torch.float64 and bank.filled.sum() == 5
    meta = StyleBank(num_classes=3, slots=2, feat_dim=4).to("meta")
    assert meta.features.device.type == meta.confidence.device.type == "meta"


def test_filing_rules():
    logits = torch.tensor([[3.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 1.0], [4.0, 0.0, 0.0]])
    labels = torch.tensor([0, 2, 2, 1])
    confidence, classes, accept = authorized_candidates(logits, labels)
    probs = torch.softmax(logits, dim=1)
    torch.testing.assert_close(confidence, probs.max(dim=1).values)
    assert classes.tolist() == [0, 2, 2, 1] and accept.tolist() == [True, False, True, False]
    confidence, classes, accept = unauthorized_candidates(logits)
    assert classes.tolist() == [0, 1, 2, 0] and accept.all()

    banks = IPStyleBanks(num_classes=3, slots=1, feat_dim=1)
    features = torch.arange(4.0)[:, None]
    banks.file_authorized(features, logits, labels)
    banks.file_unauthorized(features, logits)
    auth, auth_mask, unauth, unauth_mask = banks.prototypes()
    assert auth_mask.tolist() == [True, False, True] and auth[:, 0].tolist() == [0.0, 0.0, 2.0]
    # unauthorized class 0 gets samples 0 and 3; sample 3 is more confident
    assert unauth_mask.all() and unauth[:, 0].tolist() == [3.0, 1.0, 2.0]


def test_bad_candidates_give_clear_errors():
    bank = StyleBank(num_classes=3, slots=2, feat_dim=4)
    ok = (torch.randn(2, 4), torch.rand(2), torch.tensor([0, 1]), torch.ones(2, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"features must be \[N, 4\]"):
        bank.update(torch.randn(2, 5), *ok[1:])
    with pytest.raises(ValueError, match="integer"):
        bank.update(ok[0], ok[1], ok[2].float(), ok[3])
    with pytest.raises(ValueError, match="bool"):
        bank.update(*ok[:3], ok[3].long())
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        bank.update(*ok[:2], torch.tensor([0, 3]), ok[3])
    with pytest.raises(ValueError, match="3 classes"):
        IPStyleBanks(3, 2, 4).file_unauthorized(ok[0], torch.randn(2, 5))
