"""The main job's network stage and policy engine split into Ray shards of cells: the same
metrics as in one process."""

from __future__ import annotations

from tinylarge.config import load_preset, scenario_from_table
from tinylarge.config.loading import scenario_to_table
from tinylarge.report import collect
from tinylarge.sim import PIPELINE, run


def _through_policies(ray_shards: int, edge_sites: str) -> dict[str, object]:
    table = scenario_to_table(load_preset("smoke"))
    table["colearning"]["enabled"] = False  # type: ignore[index]
    table["network"].update(  # type: ignore[union-attr]
        n_cells=4, ray_shards=ray_shards, edge_sites=edge_sites, coverage_devices=200
    )
    table["devices"]["count"] = 40  # type: ignore[index]
    names = [s.name for s in PIPELINE]
    result = run(scenario_from_table(table, "test"), stages=PIPELINE[: names.index("policies") + 1])
    return collect(result)


def test_ray_shards_of_cells_give_the_in_process_metrics(ray_local: None) -> None:
    for sites in ("shared", "per_cell"):
        here, sharded = _through_policies(0, sites), _through_policies(3, sites)
        assert sharded["network"]["ray_shards"] == 3  # type: ignore[index]
        assert sharded["network"]["edge_server"]["sites"] == sites  # type: ignore[index]
        assert here["network"]["uplink"] == sharded["network"]["uplink"]  # type: ignore[index]
        assert here["network"]["uplink"]["messages"] > 300  # type: ignore[index]
        for policy in ("large", "cascade", "tiny"):
            assert here["policies"][policy] == sharded["policies"][policy], (sites, policy)  # type: ignore[index]
