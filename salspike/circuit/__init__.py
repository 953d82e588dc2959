"""The ground layer: what the SAL circuit is, independent of any engine.

* `schema`: the model-file schema, TOML reading and the validated `Circuit`;
* `plan`: which groups learn, at which rate and with which decay (`algorithm_plan`);
* `weights`: weight names, initialisation and checks in the cross-level layout;
* `layout`: populations and synapse groups by name;
* `functions`: D_u, the loss F and the top error;
* `hooks`: the hook API (`Hooks`) that protocols use and every level applies.

Every level (matrix engine, Brian2 builders) and every experiment imports the circuit from here.
"""

from .hooks import HOOKS, Hooks, RecordingSpec
from .layout import Layout, Population, Projection, circuit_layout
from .plan import MATRIX_ONLY, Plan, algorithm_plan, decay_coefficient, matrix_only_settings
from .schema import (ALGORITHMS, GROUPS, RULES, SCHEMA, Circuit, dump_toml, parse_overrides, parse_value,
                     read_toml_file)
from .weights import check_trials, check_weights, group_of, init_weights, weight_names

__all__ = ["ALGORITHMS", "GROUPS", "RULES", "SCHEMA", "Circuit", "dump_toml", "parse_overrides", "parse_value",
           "read_toml_file", "Plan", "algorithm_plan", "decay_coefficient", "MATRIX_ONLY", "matrix_only_settings", "check_trials", "check_weights",
           "group_of", "init_weights", "weight_names", "Layout", "Population", "Projection", "circuit_layout",
           "HOOKS", "Hooks", "RecordingSpec"]
