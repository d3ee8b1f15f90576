"""The fixed part of a learned prompt `[SOS] <n_ctx learned tokens> <class name> . [EOS]`.

CoOp, CoCoOp and IP-CLIP all learn the context tokens and keep the rest (start token, class-name
tokens, full stop, end token, padding) frozen. `PromptTemplate` tokenizes the class prompts once,
stores the frozen embeddings as buffers (`token_prefix`, `token_suffix`; the same names and layout
as upstream CoOp, so its checkpoints keep their keys) and splices any context into them:

* generic context `[n_ctx, D]` or class-specific `[C, n_ctx, D]`  -> prompts `[C, L, D]`;
* per-image context `[B, n_ctx, D]` (CoCoOp's shifted context, IP-CLIP's domain + image tokens),
  or per-image-and-class `[B, C, n_ctx, D]`                        -> prompts `[B, C, L, D]`.

The class name can sit at the end (default), in the middle or at the front of the context. All three
layouts are a fixed per-class permutation of the "end" layout, precomputed once, so assembling is one
concatenation (plus one indexing step for middle/front) whatever the batch.
"""
import clip
import torch
from torch import nn

from dassl.errors import ConfigError

__all__ = ["PromptTemplate", "CLASS_TOKEN_POSITIONS", "count_tokens"]

CLASS_TOKEN_POSITIONS = ("end", "middle", "front")


def count_tokens(text, context_length):
    """Number of BPE tokens of `text` (without start/end tokens)."""
    # truncate=True: an over-long text counts as filling the context, and the caller reports it.
    tokens = clip.tokenize(text, context_length=context_length, truncate=True)[0]
    return int(tokens.argmax()) - 1


class PromptTemplate(nn.Module):
    """Tokenized class prompts and their frozen embeddings; `assemble(ctx)` inserts a context."""

    def __init__(self, clip_model, classnames, n_ctx, ctx_init="", class_token_position="end"):
        super().__init__()
        classnames = self._check_classnames(classnames)
        if class_token_position not in CLASS_TOKEN_POSITIONS:
            raise ConfigError(
                f"CLASS_TOKEN_POSITION must be one of {', '.join(CLASS_TOKEN_POSITIONS)}, "
                f"got {class_token_position!r}"
            )
        context_length = clip_model.positional_embedding.shape[0]
        ctx_init = (ctx_init or "").replace("_", " ").strip()
        if ctx_init:
            # The context length is what the init words tokenize to (a word can be several tokens).
            n_ctx = count_tokens(ctx_init, context_length)
            if n_ctx < 1:
                raise ConfigError(f"CTX_INIT {ctx_init!r} tokenizes to no tokens; give words or leave it empty")
            prefix_text = ctx_init
        else:
            if not isinstance(n_ctx, int) or isinstance(n_ctx, bool) or n_ctx < 1:
                raise ConfigError(f"N_CTX must be a positive int (number of context tokens), got {n_ctx!r}")
            prefix_text = " ".join(["X"] * n_ctx)
        self.n_ctx = n_ctx
        self.ctx_init = ctx_init
        self.class_token_position = class_token_position
        self.classnames = [name.replace("_", " ") for name in classnames]
        self.prompt_texts = [f"{prefix_text} {name}." for name in self.classnames]
        self.name_lens = [count_tokens(name, context_length) for name in self.classnames]

        # The longest prompt must fit: SOS, the context, the class name, ".", EOS.
        longest = max(range(len(self.classnames)), key=lambda i: self.name_lens[i])
        needed = 1 + n_ctx + self.name_lens[longest] + 2
        if needed > context_length:
            raise ConfigError(
                f"the prompt for class {self.classnames[longest]!r} needs {needed} tokens "
                f"({n_ctx} context + {self.name_lens[longest]} class-name tokens + SOS, '.', EOS) but this "
                f"CLIP's context length is {context_length}; reduce N_CTX or shorten the class name"
            )
        # Every buffer lives where CLIP's token embedding does (moved with the module afterwards).
        device = clip_model.token_embedding.weight.device
        tokenized = clip.tokenize(self.prompt_texts, context_length=context_length).to(device)
        with torch.no_grad():
            embedding = clip_model.token_embedding(tokenized).to(clip_model.dtype)
        self.ctx_dim = embedding.shape[-1]

        # Saved in checkpoints (upstream keys); trainers drop them when loading for another class set.
        self.register_buffer("token_prefix", embedding[:, :1].clone())
        self.register_buffer("token_suffix", embedding[:, 1 + n_ctx:].clone())
        # Token ids in the final layout (the text encoder reads the EOT positions from them).
        permutation = self._layout_permutation(tokenized.shape[1])
        if permutation is not None:
            permutation = permutation.to(device)
            tokenized = tokenized.gather(1, permutation)
        self.register_buffer("tokenized_prompts", tokenized, persistent=False)
        self.register_buffer("layout_index", permutation, persistent=False)
        # The longest prompt in tokens (EOT position + 1): what a truncating text encoder keeps.
        self.max_length = int(tokenized.argmax(dim=-1).max()) + 1
        # Embeddings of the init words, to initialise a learned context from (None without CTX_INIT).
        self.init_context = embedding[0, 1:1 + n_ctx].clone() if ctx_init else None

    @property
    def num_classes(self):
        return len(self.classnames)

    @staticmethod
    def _check_classnames(classnames):
        if isinstance(classnames, str) or not classnames:
            raise ValueError(f"expected a non-empty list of class names, got {classnames!r}")
        bad = [name for name in classnames if not isinstance(name, str) or not name.strip()]
        if bad:
            raise ValueError(f"class names must be non-empty strings, got {bad!r}")
        return list(classnames)

    def _layout_permutation(self, length):
        """Per class, which position of the "end" layout goes to each output position (None for end)."""
        if self.class_token_position == "end":
            return None
        rows = []
        n_ctx = self.n_ctx
        half = n_ctx // 2
        for name_len in self.name_lens:
            ctx = list(range(1, 1 + n_ctx))
            name = list(range(1 + n_ctx, 1 + n_ctx + name_len))
            rest = list(range(1 + n_ctx + name_len, length))
            if self.class_token_position == "front":
                order = [0] + name + ctx + rest
            else:  # middle
                order = [0] + ctx[:half] + name + ctx[half:] + rest
            rows.append(order)
        return torch.tensor(rows, dtype=torch.long)

    def assemble(self, ctx, per_instance=False):
        """Splice `ctx` into the class prompts.

        ctx: [n_ctx, D] (shared), [C, n_ctx, D] (one per class), or, with per_instance=True,
        [B, n_ctx, D] (one per image); [B, C, n_ctx, D] is always per image and class.
        Returns [C, L, D] or [B, C, L, D] in the buffers' dtype.
        """
        num_classes = self.num_classes
        if ctx.dim() < 2 or ctx.dim() > 4 or tuple(ctx.shape[-2:]) != (self.n_ctx, self.ctx_dim):
            raise ValueError(
                f"context must end in [n_ctx, D] = [{self.n_ctx}, {self.ctx_dim}], got {tuple(ctx.shape)}"
            )
        if ctx.dim() == 3 and not per_instance and ctx.shape[0] != num_classes:
            raise ValueError(
                f"a 3-D context is read as class-specific [C={num_classes}, n_ctx, D], got {tuple(ctx.shape)}; "
                "for one context per image pass per_instance=True"
            )
        if ctx.dim() == 4 and ctx.shape[1] != num_classes:
            raise ValueError(
                f"a 4-D context must be [B, C={num_classes}, n_ctx, D], got {tuple(ctx.shape)}"
            )
        ctx = ctx.to(self.token_prefix.dtype)
        if ctx.dim() == 2:
            ctx = ctx.expand(num_classes, -1, -1)
        elif ctx.dim() == 3 and per_instance:
            ctx = ctx.unsqueeze(1).expand(-1, num_classes, -1, -1)
        batch_shape = ctx.shape[:-2]
        prefix = self.token_prefix.expand(*batch_shape, -1, -1)
        suffix = self.token_suffix.expand(*batch_shape, -1, -1)
        prompts = torch.cat([prefix, ctx, suffix], dim=-2)
        if self.layout_index is None:
            return prompts
        # Advanced indexing with small [C, 1] x [C, L] indices (a gather would need a [.., C, L, D] index).
        rows = torch.arange(num_classes, device=prompts.device).unsqueeze(1)
        return prompts[..., rows, self.layout_index, :]
