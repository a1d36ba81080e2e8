"""Language-model checkpoints and `load_language_model`.

A checkpoint of ours is a directory with ``model.safetensors`` (the `CausalTransformer`'s
weights), ``tokenizer.json`` (the `BpeTokenizer`) and ``config.json``: ``kind`` =
``"tinylarge_causal_lm"``, the `LmArchitecture`, the parameter count, the SHA-256 of the weights
and of the tokenizer, and how it was trained (command line, seed, steps, tokens seen, wall time,
held-out perplexity and next-token accuracy). While training runs, ``trainer_state.pt`` beside
them holds what is needed to resume; it is removed when the run completes.

The package ships a draft/target pair in ``tinylarge/models/pretrained/lm_draft`` and
``lm_target`` (made by ``tinylarge pretrain --task text``; the command is in each config).
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Protocol

from tinylarge.models.text.causal_transformer import CausalTransformer, LmArchitecture
from tinylarge.models.text.language_model import LanguageModel, OurLanguageModel
from tinylarge.models.text.tokenizer import BpeTokenizer

LM_CHECKPOINT_KIND = "tinylarge_causal_lm"
LM_CHECKPOINT_FORMAT = "tinylarge.causal_lm/1"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
TOKENIZER_FILE = "tokenizer.json"
TRAINER_STATE_FILE = "trainer_state.pt"
#: The shipped pair, by role.
BUILTIN_DIRS: dict[str, str] = {"draft": "lm_draft", "target": "lm_target"}


class TextTokenizer(Protocol):
    """What the hybrid schemes need of a tokenizer (ours or a Hugging Face one)."""

    @property
    def vocab_size(self) -> int: ...

    @property
    def eos_id(self) -> int: ...

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_lm_checkpoint(
    directory: str | Path,
    model: CausalTransformer,
    tokenizer: BpeTokenizer,
    training: dict[str, Any],
) -> Path:
    """Write ``model.safetensors``, ``tokenizer.json`` and ``config.json`` into ``directory``
    (created); returns the directory."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(weights, str(directory / WEIGHTS_FILE))
    tokenizer.save(directory / TOKENIZER_FILE)
    document = {
        "format": LM_CHECKPOINT_FORMAT, "kind": LM_CHECKPOINT_KIND,
        "architecture": model.architecture.to_dict(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "weights_sha256": _sha256(directory / WEIGHTS_FILE),
        "tokenizer_sha256": _sha256(directory / TOKENIZER_FILE),
        "training": training,
    }  # fmt: skip
    text = json.dumps(document, indent=2) + "\n"
    (directory / CONFIG_FILE).write_text(text, encoding="utf-8")
    return directory


def read_lm_config(directory: str | Path) -> dict[str, Any]:
    """``config.json`` of one of our LM checkpoints; ``ValueError`` when the directory is not
    one (missing files, other kind) or the weights or tokenizer do not match their SHA-256."""
    directory = Path(directory)
    path = directory / CONFIG_FILE
    if not path.is_file():
        raise ValueError(f"{str(directory)!r} holds no {CONFIG_FILE}; not an LM checkpoint")
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    if document.get("kind") != LM_CHECKPOINT_KIND:
        raise ValueError(
            f"{str(path)!r} is not a tinylarge language model (kind {document.get('kind')!r}, "
            f"expected {LM_CHECKPOINT_KIND!r})"
        )
    for name, key in ((WEIGHTS_FILE, "weights_sha256"), (TOKENIZER_FILE, "tokenizer_sha256")):
        if not (directory / name).is_file():
            raise ValueError(f"the LM checkpoint {str(directory)!r} lacks {name}")
        if _sha256(directory / name) != document.get(key):
            raise ValueError(f"{str(directory / name)!r} does not match its SHA-256 in {path}")
    return document


def load_our_language_model(directory: str | Path, name: str | None = None) -> OurLanguageModel:
    """One of our checkpoints as an `OurLanguageModel` (weights checked against the config)."""
    from safetensors.torch import load_file

    directory = Path(directory)
    document = read_lm_config(directory)
    model = CausalTransformer(LmArchitecture.from_dict(document["architecture"]))
    model.load_state_dict(load_file(str(directory / WEIGHTS_FILE)))
    return OurLanguageModel(model, name or directory.name)


def builtin_lm_dir(role: Literal["draft", "target"]) -> Path:
    """Directory of the shipped draft or target checkpoint."""
    if role not in BUILTIN_DIRS:
        raise ValueError(f"role must be 'draft' or 'target', got {role!r}")
    return Path(str(resources.files("tinylarge.models") / "pretrained" / BUILTIN_DIRS[role]))


def _resolve(spec: str, role: Literal["draft", "target"]) -> Path:
    """The directory a spec names; ``ValueError`` for a spec that is not a directory (a Hub id
    is refused: nothing is ever downloaded)."""
    path = builtin_lm_dir(role) if spec == "builtin" else Path(spec).expanduser()
    if not path.is_dir():
        raise ValueError(
            f"{role} language model {spec!r} is not a directory; give 'builtin', a checkpoint "
            "directory of `tinylarge pretrain --task text`, or a Hugging Face causal-LM "
            "directory saved with save_pretrained (nothing is downloaded)"
        )
    return path


def is_our_checkpoint(directory: Path) -> bool:
    """Whether ``directory``'s config.json is one of ours (kind ``tinylarge_causal_lm``)."""
    path = directory / CONFIG_FILE
    if not path.is_file():
        return False
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        return isinstance(document, dict) and document.get("kind") == LM_CHECKPOINT_KIND
    except ValueError:
        return False


def load_language_model(spec: str, *, role: Literal["draft", "target"]) -> LanguageModel:
    """The language model a config names.

    Parameters
    ----------
    spec : str
        ``"builtin"`` (the shipped ``lm_draft`` or ``lm_target``, by ``role``), a checkpoint
        directory of ours, or a Hugging Face causal-LM directory (loaded with
        ``local_files_only=True``; `tinylarge.models.text.hf_causal`).
    role : {"draft", "target"}
        Which shipped model ``"builtin"`` means; also named in errors.

    Raises
    ------
    ValueError
        Not a directory (checked before transformers is imported), or a directory that is
        neither kind of checkpoint.
    """
    path = _resolve(spec, role)
    if is_our_checkpoint(path):
        return load_our_language_model(path)
    from tinylarge.models.text.hf_causal import load_hf_causal_lm

    return load_hf_causal_lm(path)


def load_tokenizer(spec: str, *, role: Literal["draft", "target"] = "draft") -> TextTokenizer:
    """The tokenizer of a model spec (as `load_language_model`): ours from ``tokenizer.json``,
    a Hugging Face one with ``AutoTokenizer`` (local files only)."""
    path = _resolve(spec, role)
    if is_our_checkpoint(path):
        return BpeTokenizer.load(path / TOKENIZER_FILE)
    from tinylarge.models.text.hf_causal import load_hf_tokenizer

    return load_hf_tokenizer(path)


def check_same_vocabulary(
    draft: LanguageModel,
    target: LanguageModel,
    draft_tokenizer: TextTokenizer,
    target_tokenizer: TextTokenizer,
    probe: str = "The quick brown fox, 3.14 + x == y\n\tdef f(): ...",
) -> None:
    """``ValueError`` unless draft and target share one vocabulary: equal model vocabulary
    sizes, tokenizers that agree with them, equal EOS ids and equal encodings of ``probe``."""
    sizes = (draft.vocab_size, target.vocab_size, draft_tokenizer.vocab_size,
             target_tokenizer.vocab_size)  # fmt: skip
    if draft.vocab_size != target.vocab_size:
        raise ValueError(
            f"draft ({draft.name}) and target ({target.name}) vocabularies differ: "
            f"{draft.vocab_size} vs {target.vocab_size} tokens; speculative decoding needs one "
            "shared vocabulary"
        )
    if max(draft_tokenizer.vocab_size, target_tokenizer.vocab_size) > draft.vocab_size:
        raise ValueError(f"tokenizer and model vocabulary sizes disagree: {sizes}")
    if draft_tokenizer.eos_id != target_tokenizer.eos_id:
        raise ValueError(
            f"draft and target tokenizers have other end-of-text ids: "
            f"{draft_tokenizer.eos_id} vs {target_tokenizer.eos_id}"
        )
    if draft_tokenizer.encode(probe) != target_tokenizer.encode(probe):
        raise ValueError(
            f"draft and target tokenizers encode the same text differently ({probe!r}); "
            "they must share one vocabulary"
        )
