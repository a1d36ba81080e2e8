"""The 6G network model: topology, 3GPP TR 38.901 channels, radio profiles, link abstraction,
exact FIFO queues, latency and device energy. Vectorized: arrays over devices or messages in,
arrays out."""

from tinylarge.net.batching import batch_queue
from tinylarge.net.cell import CellDevices, attach_devices
from tinylarge.net.coverage import Coverage, coverage
from tinylarge.net.draws import cell_poisson_arrivals
from tinylarge.net.edge_service import EdgeServiceModel, fit_batch_service
from tinylarge.net.energy import RadioEnergyModel, message_energy_j, radio_energy_j
from tinylarge.net.fading import fading_gain_db, fading_power_gain
from tinylarge.net.link import (
    airtime_s,
    equal_share,
    harq_transmissions,
    outage,
    proportional_fair_rate_bps,
    rate_bps,
    snr_db,
    spectral_efficiency,
    thermal_noise_dbm,
)
from tinylarge.net.mean_rate import MeanRateLink, mean_link_rates_bps
from tinylarge.net.message_stats import MessageResult, percentile_summary
from tinylarge.net.pathloss import los_probability, path_loss_db, sample_path_loss_db
from tinylarge.net.profiles import (
    RADIO_PROFILES,
    RadioProfile,
    UnknownRadioProfileError,
    radio_profile,
)
from tinylarge.net.queues import fifo_queue, fifo_queue_grouped
from tinylarge.net.shards import ShardRunner, run_in_process
from tinylarge.net.topology import Topology, drop_devices
from tinylarge.net.uplink import (
    LinkSettings,
    poisson_arrivals,
    send_messages,
)

__all__ = [
    "RADIO_PROFILES",
    "CellDevices",
    "Coverage",
    "EdgeServiceModel",
    "LinkSettings",
    "MeanRateLink",
    "MessageResult",
    "RadioEnergyModel",
    "RadioProfile",
    "ShardRunner",
    "Topology",
    "UnknownRadioProfileError",
    "airtime_s",
    "attach_devices",
    "batch_queue",
    "cell_poisson_arrivals",
    "coverage",
    "drop_devices",
    "equal_share",
    "fading_gain_db",
    "fading_power_gain",
    "fifo_queue",
    "fifo_queue_grouped",
    "fit_batch_service",
    "harq_transmissions",
    "los_probability",
    "mean_link_rates_bps",
    "message_energy_j",
    "outage",
    "path_loss_db",
    "percentile_summary",
    "poisson_arrivals",
    "proportional_fair_rate_bps",
    "radio_energy_j",
    "radio_profile",
    "rate_bps",
    "run_in_process",
    "sample_path_loss_db",
    "send_messages",
    "snr_db",
    "spectral_efficiency",
    "thermal_noise_dbm",
]
