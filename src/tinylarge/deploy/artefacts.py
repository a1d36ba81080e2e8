"""What a deployment takes from a run directory: the scenario, the int8 tiny model, the trained
models and the fitted policies, and how `tinylarge.deploy.run` makes them when it has none.

A run directory is what `tinylarge run --out DIR` writes (`tinylarge.report.write`); a
deployment reads only ``scenario.toml``, ``tiny_int8.tlm``, ``models/`` and ``policies/``.
`save_run_artefacts` writes exactly these four, for a deployment made from Python without a
report; `DEPLOY_STAGES` are the stages that make them (up to the policies; trained models come
from the cache).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

from tinylarge.config import Scenario, load_scenario, scenario_to_toml
from tinylarge.integrate.inference.contract import Policy
from tinylarge.integrate.inference.persistence import DEPLOYABLE, load_policy, save_policy
from tinylarge.models.cache import ModelCache
from tinylarge.models.persistence import load_model, save_model
from tinylarge.sim import PIPELINE, Reporter, RunResult
from tinylarge.sim import run as run_pipeline
from tinylarge.tiny.graph import TinyModel
from tinylarge.tiny.model_file import load_tiny_model, save_tiny_model

#: The stages a deployment needs: models, the int8 model and the fitted policies.
DEPLOY_STAGES = tuple(s for s in PIPELINE if s.name not in ("colearning", "security"))
#: The files of a run directory a deployment reads.
SCENARIO_FILE, TINY_FILE, MODELS_DIR, POLICIES_DIR = (
    "scenario.toml", "tiny_int8.tlm", "models", "policies",
)  # fmt: skip


@dataclass(frozen=True)
class RunArtefacts:
    """What `tinylarge run` wrote that the edge and the devices use."""

    run_dir: Path
    scenario: Scenario
    tiny: TinyModel

    def policy(self, name: str) -> Policy:
        """The fitted policy ``name``; ``ValueError`` listing the ones the run has."""
        path = self.run_dir / POLICIES_DIR / f"{name}.json"
        if not path.is_file():
            known = sorted(p.stem for p in (self.run_dir / POLICIES_DIR).glob("*.json"))
            raise ValueError(
                f"{self.run_dir} has no fitted policy {name!r}; it has: "
                f"{', '.join(known) or 'none'} (a run skips the router when its models leave it "
                "nothing to learn)"
            )
        return load_policy(path)

    def model(self, role: str) -> nn.Module:
        """The trained model of ``role`` (``"tiny"``, ``"large"``), in eval mode."""
        model, _ = load_model(self.run_dir / MODELS_DIR / role)
        return model


def load_run(run_dir: str | Path) -> RunArtefacts:
    """The artefacts of a run directory; ``ValueError`` naming what is missing."""
    run_dir = Path(run_dir)
    for name in (SCENARIO_FILE, TINY_FILE, MODELS_DIR, POLICIES_DIR):
        if not (run_dir / name).exists():
            raise ValueError(
                f"{run_dir} is not a complete run directory: no {name} (make one with "
                "`tinylarge run --out DIR`, or let `tinylarge deploy` do it)"
            )
    return RunArtefacts(
        run_dir, load_scenario(run_dir / SCENARIO_FILE), load_tiny_model(run_dir / TINY_FILE)
    )


def save_run_artefacts(result: RunResult, run_dir: str | Path) -> Path:
    """Write what `load_run` reads of ``result`` into ``run_dir`` (created); ``run_dir``.

    ``ValueError`` if the run made no int8 tiny model (the devices' model).
    """
    run_dir = Path(run_dir)
    if result.tiny_int8 is None:
        raise ValueError("the run made no int8 tiny model: a deployment needs one")
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / SCENARIO_FILE).write_text(scenario_to_toml(result.scenario), "utf-8")
    for role, trained in result.models.items():
        extra = {"role": role, "cache_key": trained.cache_key}
        save_model(trained.model, run_dir / MODELS_DIR / role, trained.manifest, extra)
    fitted = result.policies.fitted if result.policies is not None else {}
    (run_dir / POLICIES_DIR).mkdir(exist_ok=True)
    for name, policy in fitted.items():
        if name in DEPLOYABLE:
            save_policy(policy, run_dir / POLICIES_DIR / f"{name}.json")
    save_tiny_model(result.tiny_int8, run_dir / TINY_FILE)
    return run_dir


def make_models(
    scenario: Scenario, run_dir: str | Path, *, reporter: Reporter | None = None
) -> RunArtefacts:
    """Run `DEPLOY_STAGES` of the main job on ``scenario`` (trained models from the user's
    cache) and keep what a deployment reads in ``run_dir``."""
    result = run_pipeline(scenario, cache=ModelCache(), reporter=reporter, stages=DEPLOY_STAGES)
    return load_run(save_run_artefacts(result, run_dir))
