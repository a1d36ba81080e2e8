"""The text run's stages: load the draft/target language models and score held-out text
(``language_models``), then run every hybrid scheme on it and over the 6G cell
(``hybrid_lm``); see `tinylarge.sim.hybrid_lm_results` for what is measured and how quality is
defined."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from tinylarge.config.hybrid_lm_config import HybridLmConfig
from tinylarge.config.scenario import Scenario
from tinylarge.data.text_corpus import (
    python_corpus_documents,
    split_documents,
    text_file_documents,
)
from tinylarge.integrate.hybrid_lm.teacher_forced import score_positions
from tinylarge.models.text.checkpoints import (
    check_same_vocabulary,
    load_language_model,
    load_tokenizer,
)
from tinylarge.seeding import derive_seed
from tinylarge.sim.hybrid_lm_results import LanguageRun
from tinylarge.sim.hybrid_lm_schemes import run_schemes
from tinylarge.sim.stages import StageContext
from tinylarge.sim.state import RunState


def check_text_config(scenario: Scenario) -> None:
    """Fail before any work when a text scenario names files or models that do not exist."""
    corpus = scenario.task.text.corpus
    if corpus != "python":
        missing = [p for p in corpus if not Path(p).is_file()]
        if missing:
            raise ValueError(f"task.text.corpus: no such file(s): {', '.join(missing)}")
    config = scenario.hybrid_lm
    for role in ("draft", "target"):
        spec = getattr(config, role)
        if spec != "builtin" and not Path(spec).is_dir():
            raise ValueError(
                f"hybrid_lm.{role} = {spec!r}: expected 'builtin' or a local directory (a "
                "checkpoint of `tinylarge pretrain --task text` or a Hugging Face causal LM "
                "saved with save_pretrained); model hub ids are never fetched"
            )


def _documents(scenario: Scenario) -> tuple[list[str], str]:
    corpus = scenario.task.text.corpus
    if corpus == "python":
        return python_corpus_documents(), "the English text that ships with Python"
    return text_file_documents(corpus), f"{len(corpus)} text file(s)"


def _prompts(ids_by_doc: list[list[int]], count: int, length: int) -> list[list[int]]:
    """The first ``length`` tokens of the first ``count`` documents that are long enough."""
    long_enough = [d[:length] for d in ids_by_doc if len(d) > length]
    if not long_enough:
        raise ValueError(f"no held-out document has more than {length} tokens for a prompt")
    return long_enough[:count]


def language_models_stage(state: RunState, ctx: StageContext) -> str:
    """Load both models, check their vocabularies, and score the held-out text."""
    scenario, config = state.scenario, state.scenario.hybrid_lm
    docs, source = _documents(scenario)
    _, held_out = split_documents(docs, scenario.task.text.validation_every)
    draft = load_language_model(config.draft, role="draft")
    target = load_language_model(config.target, role="target")
    tokenizer = load_tokenizer(config.draft, role="draft")
    check_same_vocabulary(draft, target, tokenizer, load_tokenizer(config.target, role="target"))
    ids = np.array([t for d in held_out for t in (*tokenizer.encode(d), tokenizer.eos_id)])
    half = min(config.eval_tokens, ids.size // 2)
    if half < 64:
        raise ValueError(f"the held-out text has {ids.size} tokens: too few (need >= 128)")
    generator = torch.Generator().manual_seed(derive_seed(scenario.seed, "hybrid_lm", "score"))
    calibration = score_positions(draft, target, ids[:half], config, generator)
    test = score_positions(draft, target, ids[half : 2 * half], config, generator)
    prompts = _prompts([tokenizer.encode(d) for d in held_out[: 4 * config.prompts]],
                       config.prompts, 16)  # fmt: skip
    state.language = LanguageRun(
        draft, target, calibration, test, prompts,
        corpus={"corpus": source, "documents": len(docs), "held_out_documents": len(held_out),
                "characters": sum(len(d) for d in docs), "held_out_tokens": int(ids.size),
                "scored_tokens": 2 * half, "vocab_size": tokenizer.vocab_size},
    )  # fmt: skip
    return (
        f"draft {draft.parameter_count:,} / target {target.parameter_count:,} parameters; "
        f"{2 * half:,} held-out tokens scored"
    )


def hybrid_lm_stage(state: RunState, ctx: StageContext) -> str:
    """Calibrate U-HLM, run every scheme on the held-out text and over the cell."""
    config: HybridLmConfig = state.scenario.hybrid_lm
    if not config.enabled:
        return "disabled"
    language = state.language
    if language is None:
        raise RuntimeError("the 'language_models' stage must run before 'hybrid_lm'")
    result = run_schemes(state.scenario, language)
    state.hybrid_lm = result
    u = result.schemes.get("u_hlm")
    if u is None:
        return f"{len(result.schemes)} schemes"
    return (
        f"U-HLM: {100 * (1 - u['uplink_fraction']):.1f} % of uplinks skipped at "
        f"{100 * u['quality_vs_llm']:.1f} % of the LLM's quality"
    )
