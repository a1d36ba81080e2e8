"""The names of the files a deployment's processes exchange, and of what `tinylarge.deploy.run`
writes into its output directory.

In the edge's state directory (`DeployLayout.edge_state`), written by ``tinylarge serve``:

==========================  =====================================================  ===========
file                        what                                                   when
==========================  =====================================================  ===========
``ready``                   the edge's boot id: it is connected and serving        on connect
``server_stats.json``       the edge's counters (`EdgeServer.stats`)               clean exit
``edge_answered.npz``       per reply: device, request id, time in the edge        clean exit
==========================  =====================================================  ===========

A clean exit is SIGINT or SIGTERM; an edge killed with SIGKILL writes neither file, so the
supervisor deletes both before it starts one (no stale counters of an earlier run).

In the output directory of `tinylarge.deploy.run` (``tinylarge deploy --out``):

==========================  ===========================================================
file                        what
==========================  ===========================================================
``fleet_records.npz``       per-request records of the fleet (`save_records`)
``fleet_started``           the schedule's start, Unix time (s), written by the fleet
``disconnect_now``          appears when the fault injector disconnects devices
``serve.log``/``fleet.log`` the two child processes' output
``metrics.json``            ``deploy.*`` (`tinylarge.deploy.result`)
``broker/``                 the Mosquitto the run started (config, database, log)
``run/``                    the models, when the run made them (a `tinylarge run` directory)
==========================  ===========================================================
"""

from __future__ import annotations

READY_FILE = "ready"
STATS_FILE = "server_stats.json"
ANSWERED_FILE = "edge_answered.npz"
RECORDS_FILE = "fleet_records.npz"
STARTED_FILE = "fleet_started"
DISCONNECT_TRIGGER_FILE = "disconnect_now"
SERVE_LOG, FLEET_LOG = "serve.log", "fleet.log"
METRICS_FILE = "metrics.json"
BROKER_DIR, MODELS_DIR = "broker", "run"
