"""The anchor's teacher: whose class distribution `W_ZS * KL(p_teacher || p_a)` holds the authorized images to.

The protection pulls the authorized prompts away from where a plain prompt learner would put them;
the anchor gives that back (docs/method.md M12). Which distribution it gives back is the teacher
(`TRAINER.IPCLIP.ANCHOR.TEACHER`):

- "zero_shot": zero-shot CLIP, the same image feature against the hand-written class prompts
  (frozen). The anchor then holds the authorized side at zero-shot's level; CoOp, the reference
  IP-CLIP is measured against, often ends above it.
- "learned_context": a CoOp-style shared context, learned beside IP-CLIP from the authorized
  images' cross-entropy alone (its own term, `ce_teacher`; no other term reaches it). It starts as
  the zero-shot prompt (`ANCHOR.CTX_INIT` "a photo of a" + "<class>.") and learns what CoOp would
  learn from the same shots, so the anchor follows the reference instead of staying at zero-shot
  (docs/method.md M19: measured, not shipped).

Both are scored on the frozen image feature IP-CLIP already computed: the teacher costs one
text-encoder call over the C class prompts per step (learned) or nothing (zero-shot). The KL sees
the teacher's logits detached: the anchor moves IP-CLIP's prompts, never the teacher.
"""
import torch.nn.functional as F
from torch import nn

from dassl.errors import ConfigError

from ..prompts import PromptTemplate
from ..text_encoder import class_text_features

#: Values of TRAINER.IPCLIP.ANCHOR.TEACHER.
TEACHERS = ("zero_shot", "learned_context")


class ZeroShotTeacher(nn.Module):
    """Zero-shot CLIP's classifier: fixed text features of hand-written prompts (not checkpointed)."""

    learns = False

    def __init__(self, clip_model, prompts):
        super().__init__()
        self.register_buffer("text", class_text_features(clip_model, prompts).float(), persistent=False)

    def forward(self, image, scale, text_encoder=None):
        return (scale * image @ self.text.t()).detach()


class LearnedContextTeacher(nn.Module):
    """A shared learned context in front of every class name (CoOp), trained on the authorized
    images' cross-entropy. `context` is its only parameter (IPCLIPModel checkpoints it with the IP
    learner); the template's token buffers are rebuilt from the class names."""

    learns = True

    def __init__(self, clip_model, classnames, ctx_init):
        super().__init__()
        if not ctx_init:
            raise ConfigError("TRAINER.IPCLIP.ANCHOR.CTX_INIT must name the words the learned teacher "
                              "starts from (e.g. \"a photo of a\": the zero-shot prompt); got an empty "
                              "string")
        self.template = PromptTemplate(clip_model, classnames, n_ctx=1, ctx_init=ctx_init)
        self.context = nn.Parameter(self.template.init_context.clone().float())

    def forward(self, image, scale, text_encoder):
        prompts = self.template.assemble(self.context)  # [C, L, D]
        text = text_encoder(prompts, self.template.tokenized_prompts, truncate=True,
                            max_length=self.template.max_length)
        return scale * image @ F.normalize(text.float(), dim=-1).t()


def build_anchor_teacher(teacher, clip_model, classnames, zero_shot_prompts, ctx_init):
    """The configured teacher (None where the anchor is off: no zero-shot prompts given)."""
    if teacher not in TEACHERS:
        raise ConfigError(f"TRAINER.IPCLIP.ANCHOR.TEACHER must be one of {', '.join(TEACHERS)}, "
                          f"got {teacher!r}")
    if not zero_shot_prompts:
        return None
    if teacher == "zero_shot":
        return ZeroShotTeacher(clip_model, zero_shot_prompts)
    return LearnedContextTeacher(clip_model, classnames, ctx_init)


def teacher_loss(teacher_logits, labels):
    """The learned teacher's own objective: cross-entropy on the authorized images (CoOp's)."""
    return F.cross_entropy(teacher_logits.float(), labels)
