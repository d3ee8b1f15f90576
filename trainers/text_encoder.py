"""CLIP's text transformer run on prompt *embeddings*, batched and cut after the last EOT token.

Prompt learners build token embeddings themselves, so `clip_model.encode_text` (which starts from
token ids) cannot be used. This module reuses CLIP's own layers (never a fork) and adds two things
that matter for instance-conditional prompts (CoCoOp, IP-CLIP: B images x C classes prompts/step):

* all N prompts are encoded in one call (optionally in chunks, as a memory cap), and
* the sequence is truncated to the longest EOT position + 1. CLIP's text mask is causal, so the
  feature at an EOT position only depends on the tokens before it: truncation is exact and saves
  most of the work (class prompts are ~10 tokens of a 77-token context).
"""
import clip
import torch
import torch.nn.functional as F
from torch import nn

from dassl.errors import ConfigError

__all__ = ["TextEncoder", "encode_class_prompts"]


class TextEncoder(nn.Module):
    """Encodes prompt embeddings `[N, L, D]` into projected (not normalised) text features `[N, E]`."""

    def __init__(self, clip_model):
        super().__init__()
        self.transformer = clip_model.transformer
        self.positional_embedding = clip_model.positional_embedding
        self.ln_final = clip_model.ln_final
        self.text_projection = clip_model.text_projection
        self.context_length = clip_model.positional_embedding.shape[0]
        self.width = clip_model.positional_embedding.shape[1]
        self._causal = None

    @property
    def dtype(self):
        """The dtype CLIP's text weights are in now (fp16 after `cast_clip`, else fp32)."""
        return self.text_projection.dtype

    def forward(self, prompts, tokenized, truncate=True, chunk_size=0, max_length=None):
        """prompts [N, L, D] embeddings, tokenized [N, L] ids (EOT = the largest id in each row).

        max_length: the longest EOT position + 1 when the caller knows it (PromptTemplate.max_length);
        given, truncation needs no host synchronisation, which matters in a training step.
        """
        self._check_inputs(prompts, tokenized, chunk_size)
        eot = tokenized.to(prompts.device).argmax(dim=-1)
        length = prompts.shape[1]
        if truncate and self._is_causal():
            length = int(eot.max()) + 1 if max_length is None else min(int(max_length), length)
        prompts = prompts[:, :length]
        if chunk_size <= 0 or prompts.shape[0] <= chunk_size:
            return self._encode(prompts, eot)
        return torch.cat(
            [self._encode(p, e) for p, e in zip(prompts.split(chunk_size), eot.split(chunk_size))]
        )

    def _check_inputs(self, prompts, tokenized, chunk_size):
        if prompts.dim() != 3:
            raise ValueError(
                f"TextEncoder expects prompt embeddings of shape [N, L, D], got {tuple(prompts.shape)}; "
                "flatten instance-conditional prompts [B, C, L, D] to [B * C, L, D] first"
            )
        n, length, width = prompts.shape
        if width != self.width:
            raise ValueError(f"prompt embeddings have width {width}, CLIP's text transformer has {self.width}")
        if length > self.context_length:
            raise ValueError(
                f"prompts have {length} tokens but this CLIP's context length is {self.context_length}; "
                f"tokenize with clip.tokenize(..., context_length={self.context_length})"
            )
        if tuple(tokenized.shape) != (n, length):
            raise ValueError(
                f"tokenized prompts must have shape [N, L] = {(n, length)} to match the embeddings, "
                f"got {tuple(tokenized.shape)}"
            )
        if not isinstance(chunk_size, int) or chunk_size < 0:
            raise ValueError(f"chunk_size must be an int >= 0 (0 = no chunking), got {chunk_size!r}")

    def _is_causal(self):
        """True when every block's mask is CLIP's causal mask (-inf strictly above the diagonal).

        Checked once and cached: truncation is only exact, and the fused causal attention kernel only
        applies, under that mask.
        """
        if self._causal is None:
            self._causal = all(_is_causal_mask(block.attn_mask) for block in self.transformer.resblocks)
        return self._causal

    def _encode(self, prompts, eot):
        length = prompts.shape[1]
        x = prompts.to(self.dtype) + self.positional_embedding[:length].to(self.dtype)
        for block in self.transformer.resblocks:
            x = self._run_block(block, x)
        x = x[torch.arange(x.shape[0], device=x.device), eot]
        x = self.ln_final(x).to(self.dtype)
        return x @ self.text_projection

    def _run_block(self, block, x):
        """One ResidualAttentionBlock on [N, T, D], CLIP's own weights, causal attention over T tokens
        (fused scaled-dot-product attention; no state mutation)."""
        mask = None if self._is_causal() else block.attn_mask
        x = x + _self_attention(block.attn, block.ln_1(x), self._is_causal(), mask)
        return x + block.mlp(block.ln_2(x))


def _is_causal_mask(mask):
    if mask is None or mask.dim() != 2 or mask.shape[0] != mask.shape[1]:
        return False
    upper = torch.triu(torch.ones_like(mask, dtype=torch.bool), diagonal=1)
    return bool(torch.isneginf(mask[upper]).all()) and bool((mask[~upper] == 0).all())


def _self_attention(attn, x, causal, mask=None):
    """nn.MultiheadAttention's computation with its weights, on batch-first [N, T, D] input, through
    F.scaled_dot_product_attention: `causal` picks the fused causal kernels (no [T, T] mask is
    built); otherwise `mask` (any CLIP-style additive mask, or None) is sliced to T tokens."""
    n, length, width = x.shape
    heads = attn.num_heads
    qkv = F.linear(x, attn.in_proj_weight, attn.in_proj_bias)
    q, k, v = qkv.view(n, length, 3, heads, width // heads).permute(2, 0, 3, 1, 4)
    if causal:
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    else:
        if mask is not None:
            mask = mask[:length, :length].to(device=x.device, dtype=x.dtype)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    out = out.transpose(1, 2).reshape(n, length, width)
    return attn.out_proj(out)


@torch.no_grad()
def encode_class_prompts(clip_model, texts, chunk_size=0):
    """Projected (not normalised) features `[N, E]` of fixed text prompts, e.g. zero-shot templates."""
    if isinstance(texts, str) or not texts:
        raise ValueError(f"expected a non-empty list of prompt strings, got {texts!r}")
    context_length = clip_model.positional_embedding.shape[0]
    try:
        tokens = clip.tokenize(list(texts), context_length=context_length)
    except RuntimeError as err:
        raise ConfigError(f"{err}; shorten the prompt template or the class name") from None
    device = clip_model.token_embedding.weight.device
    tokens = tokens.to(device)
    embeddings = clip_model.token_embedding(tokens)
    return TextEncoder(clip_model)(embeddings, tokens, truncate=True, chunk_size=chunk_size)


def class_text_features(clip_model, texts):
    """L2-normalised features `[N, E]` of fixed text prompts: zero-shot CLIP's classifier weights."""
    return F.normalize(encode_class_prompts(clip_model, texts), dim=-1)
