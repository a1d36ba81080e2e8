"""Distilling a draft language model from a target (the teacher).

The draft of speculative decoding is useful in proportion to how often the target accepts its
tokens: with draft distribution q and target distribution p, a drafted token is accepted with
probability sum_x min(p(x), q(x)) (Leviathan et al., ICML 2023, arXiv:2211.17192). A draft
trained on the true next tokens alone learns the text, not the target. Knowledge distillation
(Hinton, Vinyals & Dean 2015, arXiv:1503.02531) trains it on the teacher's next-token
distributions instead; DistillSpec (Zhou et al., ICLR 2024, arXiv:2310.08461) shows that this
raises the acceptance rate of speculative decoding.

The loss here is token-level, over every position of each training window, at temperature 1::

    loss = alpha * KL(p_teacher || q_student) + (1 - alpha) * CE(q_student, true next token)

(the forward KL, in nats per token). The teacher runs in ``torch.inference_mode`` on the same
batch as the student; it is a fixed, deterministic function of the batch, so a distilled run
resumes exactly like a run on the labels alone.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray

from tinylarge.models.text.causal_transformer import CausalTransformer
from tinylarge.models.text.checkpoints import (
    TOKENIZER_FILE,
    builtin_lm_dir,
    is_our_checkpoint,
    load_our_language_model,
    read_lm_config,
)
from tinylarge.models.text.tokenizer import BpeTokenizer

#: The divergence and temperature of the loss (recorded with the teacher).
DIVERGENCE = "forward_kl"
TEMPERATURE = 1.0


@dataclass(frozen=True)
class Teacher:
    """A frozen teacher model and the weight ``alpha`` of its term in the loss.

    Attributes
    ----------
    model : CausalTransformer
        In eval mode; never trained.
    spec : str
        How it was named (``"builtin"`` = the shipped target, or a checkpoint directory).
    weights_sha256 : str
        SHA-256 of its ``model.safetensors`` (identifies it in records and on resume).
    tokenizer : BpeTokenizer
        Its tokenizer; the student must use the same one.
    weight : float
        ``alpha`` in [0, 1]: 1 is pure distillation, 0 the cross-entropy alone.
    """

    model: CausalTransformer
    spec: str
    weights_sha256: str
    tokenizer: BpeTokenizer
    weight: float

    def record(self) -> dict[str, Any]:
        """What a training record and a resumable state store about the teacher."""
        return {"teacher": self.spec, "teacher_weights_sha256": self.weights_sha256,
                "distill_weight": self.weight, "divergence": DIVERGENCE,
                "temperature": TEMPERATURE}  # fmt: skip


def teacher_dir(spec: str) -> Path:
    """The checkpoint directory a teacher spec names (``"builtin"``: the shipped target)."""
    return builtin_lm_dir("target") if spec == "builtin" else Path(spec).expanduser()


def load_teacher(spec: str, weight: float = 1.0) -> Teacher:
    """Load a teacher: one of our checkpoints (`tinylarge pretrain --task text`).

    Parameters
    ----------
    spec : str
        ``"builtin"`` (the shipped target) or a checkpoint directory of ours.
    weight : float
        ``alpha`` in [0, 1], the weight of the KL term.

    Raises
    ------
    ValueError
        ``weight`` outside [0, 1], a spec that is not a directory, or a directory that is not
        one of our checkpoints (a Hugging Face model cannot teach: its logits are not computed
        by `CausalTransformer`), or files that do not match their SHA-256.
    """
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"the distillation weight must lie in [0, 1], got {weight}")
    path = teacher_dir(spec)
    if not path.is_dir():
        raise ValueError(f"teacher {spec!r} is not a directory; give 'builtin' or a checkpoint "
                         "directory of `tinylarge pretrain --task text`")  # fmt: skip
    if not is_our_checkpoint(path):
        raise ValueError(f"teacher {spec!r} is not a checkpoint of `tinylarge pretrain --task "
                         "text` (kind tinylarge_causal_lm); other models cannot teach")  # fmt: skip
    document = read_lm_config(path)
    model = load_our_language_model(path).model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    tokenizer = BpeTokenizer.load(path / TOKENIZER_FILE)
    return Teacher(model, spec, str(document["weights_sha256"]), tokenizer, float(weight))


def check_teacher(teacher: Teacher, tokenizer: BpeTokenizer, context: int) -> None:
    """``ValueError`` unless ``teacher`` can teach a student that uses ``tokenizer`` and
    windows of ``context`` tokens: the same vocabulary (size and tokenizer JSON) and a context
    at least as long."""
    vocab = teacher.model.architecture.vocab_size
    if vocab != tokenizer.vocab_size:
        raise ValueError(
            f"the teacher {teacher.spec!r} has a vocabulary of {vocab} tokens, the student's "
            f"tokenizer {tokenizer.vocab_size}; distillation compares next-token distributions "
            "token by token, so both must use the teacher's tokenizer"
        )
    if teacher.tokenizer.to_json() != tokenizer.to_json():
        digest = hashlib.sha256(tokenizer.to_json().encode()).hexdigest()[:12]
        theirs = hashlib.sha256(teacher.tokenizer.to_json().encode()).hexdigest()[:12]
        raise ValueError(
            f"the student's tokenizer (SHA-256 {digest}...) is not the teacher's ({theirs}...), "
            f"although both have {vocab} tokens; train the student with the teacher's "
            "tokenizer.json"
        )
    if teacher.model.architecture.context < context:
        raise ValueError(
            f"the teacher's context ({teacher.model.architecture.context} tokens) is shorter "
            f"than the student's training windows ({context} tokens)"
        )


def teacher_log_probs(teacher: CausalTransformer, tokens: torch.Tensor) -> torch.Tensor:
    """The teacher's next-token log-probabilities (B, T, V) float32 for ``tokens`` (B, T),
    computed in inference mode (a normal tensor, usable in the student's loss)."""
    with torch.inference_mode():
        log_p = F.log_softmax(teacher(tokens).float(), dim=-1)
    return log_p.clone()


def distillation_loss(
    student_logits: torch.Tensor,
    targets: torch.Tensor,
    teacher_log_p: torch.Tensor | None,
    weight: float,
) -> torch.Tensor:
    """``weight * KL(p_teacher || q_student) + (1 - weight) * CE`` in nats per token.

    Parameters
    ----------
    student_logits : Tensor
        (B, T, V).
    targets : Tensor
        (B, T) int64, the true next tokens.
    teacher_log_p : Tensor or None
        (B, T, V) from `teacher_log_probs`; may be None when ``weight`` is 0.
    weight : float
        ``alpha`` in [0, 1]. A term of weight 0 is not computed, so ``weight=0`` is exactly
        the cross-entropy of training on the labels alone.
    """
    ce = None
    if weight < 1.0:
        ce = F.cross_entropy(student_logits.flatten(0, 1), targets.flatten())
        if weight == 0.0:
            return ce
    if teacher_log_p is None:
        raise ValueError("a distillation weight above 0 needs the teacher's log-probabilities")
    log_q = F.log_softmax(student_logits.flatten(0, 1).float(), dim=-1)
    kl = F.kl_div(log_q, teacher_log_p.flatten(0, 1), reduction="batchmean", log_target=True)
    return kl if ce is None else weight * kl + (1.0 - weight) * ce


@dataclass(frozen=True)
class TeacherMatch:
    """How closely a student follows its teacher on held-out text, per predicted token.

    Attributes
    ----------
    kl : float
        Mean KL(p_teacher || q_student), nats/token.
    agreement : float
        Share of positions where both argmax tokens agree.
    acceptance : float
        Mean sum_x min(p(x), q(x)): the probability that speculative sampling at temperature
        1 accepts a token drafted by the student.
    tokens : int
        Positions scored.
    """

    kl: float
    agreement: float
    acceptance: float
    tokens: int


def teacher_match(
    student: CausalTransformer, teacher: CausalTransformer, token_ids: NDArray[np.int32]
) -> TeacherMatch:
    """Score ``token_ids`` in consecutive non-overlapping windows of the student's context
    (as `tinylarge.models.text.training.held_out_score` does) with both models."""
    context = student.architecture.context
    stream = torch.from_numpy(np.asarray(token_ids, dtype=np.int64))
    if len(stream) < 2:
        raise ValueError("need at least 2 held-out tokens to score")
    full = (len(stream) - 1) // context
    windows = [stream[i * context : (i + 1) * context] for i in range(full)]
    batches = [torch.stack(windows[i : i + 32]) for i in range(0, full, 32)]
    if full * context < len(stream) - 1:
        batches.append(stream[full * context : -1][None])
    was_training = student.training
    student.eval()
    kl, agree, accept, count = 0.0, 0, 0.0, 0
    with torch.inference_mode():
        for x in batches:
            log_q = F.log_softmax(student(x).float(), dim=-1)
            log_p = F.log_softmax(teacher(x).float(), dim=-1)
            kl += float((log_p.exp() * (log_p - log_q)).sum())
            agree += int((log_p.argmax(-1) == log_q.argmax(-1)).sum())
            accept += float(torch.minimum(log_p.exp(), log_q.exp()).sum())
            count += x.numel()
    student.train(was_training)
    return TeacherMatch(kl / count, agree / count, accept / count, count)
