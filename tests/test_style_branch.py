"""StyleEnhancement: attention from query features over the banks' class prototypes."""
import pytest
import torch
import torch.nn.functional as F

from trainers.ipclip.style_branch import StyleEnhancement


def inputs(batch=3, classes=5, dim=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    f = F.normalize(torch.randn(batch, dim, generator=g), dim=-1)
    return (f, torch.randn(classes, dim, generator=g), torch.ones(classes, dtype=torch.bool),
            torch.randn(classes, dim, generator=g), torch.ones(classes, dtype=torch.bool))


def test_shapes_and_unit_norm():
    torch.manual_seed(0)
    branch = StyleEnhancement(16, hidden=8)
    self_enhanced, cross = branch(*inputs())
    assert self_enhanced.shape == cross.shape == (3, 16)
    torch.testing.assert_close(self_enhanced.norm(dim=-1), torch.ones(3))
    torch.testing.assert_close(cross.norm(dim=-1), torch.ones(3))
    assert not torch.allclose(self_enhanced, cross)  # different banks, different features


def test_masked_prototype_has_no_influence():
    torch.manual_seed(0)
    branch = StyleEnhancement(16, hidden=8)
    f, auth, auth_mask, unauth, unauth_mask = inputs()
    auth_mask[[1, 3]] = False
    unauth_mask[0] = False
    before = branch(f, auth, auth_mask, unauth, unauth_mask)
    auth2, unauth2 = auth.clone(), unauth.clone()
    auth2[[1, 3]] = 1e4 * torch.randn(2, 16)
    unauth2[0] = -1e4
    after = branch(f, auth2, auth_mask, unauth2, unauth_mask)
    torch.testing.assert_close(after[0], before[0])
    torch.testing.assert_close(after[1], before[1])
    # while an unmasked prototype does change the output
    auth2[0] += 3
    assert not torch.allclose(branch(f, auth2, auth_mask, unauth, unauth_mask)[0], before[0])


def test_empty_bank_gives_the_normalised_query():
    branch = StyleEnhancement(16, hidden=8)
    f, auth, auth_mask, unauth, unauth_mask = inputs()
    out, _ = branch(f * 3, auth, torch.zeros_like(auth_mask), unauth, unauth_mask)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, f)


def test_gradients_reach_branch_parameters():
    branch = StyleEnhancement(16, hidden=8)
    self_enhanced, cross = branch(*inputs())
    (self_enhanced.sum() + cross.square().sum()).backward()
    for name, param in branch.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_autocast_and_bad_shapes():
    branch = StyleEnhancement(16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, _ = branch(*inputs())
    assert torch.isfinite(out.float()).all()
    f, auth, auth_mask, unauth, unauth_mask = inputs()
    with pytest.raises(ValueError, match=r"features must be \[B, 16\]"):
        branch(f[:, :8], auth, auth_mask, unauth, unauth_mask)
    with pytest.raises(ValueError, match="prototypes must have shape"):
        branch(f, auth[:, :8], auth_mask, unauth, unauth_mask)
