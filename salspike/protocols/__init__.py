"""Plasticity protocols as data (``protocols/*.toml``), run at a level through the hook API.

* `schema`: the keys every protocol file shares and their validation;
* `engine`: the registry of protocol kinds (`register_protocol`), `load_protocol`,
  `run_protocol` (table, figure, provenance) and `figure_from_folder`;
* `learning`: ``apical_lesion``, ``area_silencing``, ``instructive_sign``; `development`: ``self_assembly``, ``motif``;
  `synaptic`: ``heterosynaptic``, ``rate_dependence``;
* `timing`: ``presentation_time`` (error latency per layer, minimum presentation time; spike level only);
* `btsp`: ``btsp_window`` (SAL's pairing window over seconds beside the BTSP kernel; spike level only);
* `modulation`: ``short_term_modulation`` (Sec. 2.3, the loss after h <- h + alpha Vbar hbar; matrix level only);
* `recording`: the spike trains of a spike-level run, written to NWB beside its table;
* `pairing`: the spike-level pairing window (its own schema, spike level only).

``salspike protocol list`` shows the bundled protocols; ``salspike protocol run NAME --level
matrix --out DIR`` runs one.
"""

from .engine import PROTOCOLS, Protocol, figure_from_folder, list_protocols, load_protocol, register_protocol, run_protocol
from . import development as _development  # noqa: F401  (registers self_assembly)
from . import learning as _learning  # noqa: F401  (registers apical_lesion, area_silencing)
from . import synaptic as _synaptic  # noqa: F401  (registers heterosynaptic, rate_dependence)
from . import timing as _timing  # noqa: F401  (registers presentation_time)
from . import btsp as _btsp  # noqa: F401  (registers btsp_window)
from . import modulation as _modulation  # noqa: F401  (registers short_term_modulation)

__all__ = ["PROTOCOLS", "Protocol", "figure_from_folder", "list_protocols", "load_protocol", "register_protocol",
           "run_protocol"]
