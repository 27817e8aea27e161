"""Design of experiments: the study's parameters (XLRM uncertainties X and levers L) and samplers.

A case of a design is a point of the unit cube mapped to parameter values:

* two cube dimensions give the heat-pump shares (baseline / demand-managed / uncontrolled) as a
  uniform point on the 2-simplex (the square-root map, which keeps the design's stratification);
* every other dimension maps linearly onto its bounds in ``common.config.DOE_BOUNDS``.

The three shares are dependent (they sum to one; over a uniform design the rank correlation of
``shares.dm`` and ``shares.un`` is about -0.5). The analysis works on two independent coordinates
of the same point, :data:`FACTORS`, each a monotone function of ONE cube dimension:

* ``hp_adoption = 1 - shares.baseline = sqrt(shares_u1)`` (X: customers with a heat pump);
* ``hp_dm_fraction = shares.dm / (shares.dm + shares.un) = 1 - shares_u2`` (L: demand-management
  enrolment of the heat pumps), undefined (NaN) where there is no heat pump (``dm + un = 0``, e.g.
  the reference case "0"); analyses leave such runs out.

Common random numbers: the seeds belong to a *placement replicate*, not to a case. Every case of
replicate ``r`` (in every design) carries the same seeds per purpose (heat-pump variants, EV hosts,
EV sessions, storage, PV; residential rooftop PV and home batteries take their own orders from the PV and
storage seeds), drawn from ``numpy.random.SeedSequence`` (never Python's salted
``hash()``). Phase 6 turns each seed into one random order of a feeder's customers per purpose and a
case takes its hosts from the head of that order, so a higher share is a superset of a lower one and
two cases of a replicate differ only where their inputs differ (variance reduction by common random
numbers, Law and Kelton, *Simulation Modeling and Analysis*, ch. 11). ``--replicates R`` repeats
every design point with R independent placements; ``placement_replicate`` is then an explicit
factor of the analysis, which measures how much placement alone moves each metric.

The mixes JSON (``mixes_<design>.json``) keeps the earlier study's schema: keys ``"0".."N"``, case
``"0"`` the fixed reference case (``common.config.REFERENCE_CASE``, one replicate: replicate 0's
placements; it has no heat pump but 10 % EVs and 5 % storage and PV, so on a small feeder its metrics,
which normalise the pooled analysis and decide "fails before any adoption", are those of one placement),
then for design point p = 1..n and replicate r = 0..R-1
the case ``1 + (p - 1) R + r``, with ``design_point`` and ``placement_replicate`` in the case.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from common import config

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Parameter:
    """One study input: its key in the mixes JSON, bounds, unit and XLRM role."""

    name: str
    low: float
    high: float
    unit: str
    role: str  # "X" (uncertainty) or "L" (lever)
    description: str


#: Study inputs (flattened names as in phase 7 tables). The three heat-pump shares come from two
#: cube dimensions (simplex) and always sum to one.
PARAMETERS: tuple[Parameter, ...] = (
    Parameter("shares.baseline", 0.0, 1.0, "fraction of customers", "X",
              "customers keeping their existing heating and cooling"),
    Parameter("shares.dm", 0.0, 1.0, "fraction of customers", "L",
              "customers with heat pumps enrolled in demand management"),
    Parameter("shares.un", 0.0, 1.0, "fraction of customers", "X",
              "customers with uncontrolled heat pumps"),
    Parameter("ev_perc", *config.DOE_BOUNDS["ev_perc"], "fraction of residential customers", "X",
              "residential customers with an EV"),
    Parameter("ev_lvl2_perc", *config.DOE_BOUNDS["ev_lvl2_perc"], "fraction of EVs", "X", "EVs charging at Level 2 (240 V)"),
    Parameter("ev_split.controlled", *config.DOE_BOUNDS["ev_split.controlled"], "fraction of EVs", "L",
              "EVs in the managed-charging programme"),
    Parameter("storage_perc_3ph", *config.DOE_BOUNDS["storage_perc_3ph"], "fraction of three-phase customers", "L",
              "three-phase customers hosting a peak-shaving battery"),
    Parameter("pv_perc_3ph", *config.DOE_BOUNDS["pv_perc_3ph"], "fraction of three-phase customers", "X",
              "three-phase customers hosting PV"),
    Parameter("pv_perc_res", *config.DOE_BOUNDS["pv_perc_res"], "fraction of residential customers", "X",
              "residential (not three-phase) customers with rooftop PV sized from their annual energy"),
    Parameter("storage_perc_res", *config.DOE_BOUNDS["storage_perc_res"], "fraction of residential customers", "L",
              "residential (not three-phase) customers with a home battery in a utility programme"),
)
PARAMETER_BY_NAME = {p.name: p for p in PARAMETERS}

#: Independent coordinates of the heat-pump shares (derived from the shares, not sampled, not in the
#: mixes files): what the sensitivity analysis and the scenario discovery use instead of the shares.
FACTORS: tuple[Parameter, ...] = (
    Parameter("hp_adoption", 0.0, 1.0, "fraction of customers", "X",
              "customers with a heat pump, demand-managed or uncontrolled: 1 - shares.baseline "
              "(= sqrt of cube dimension shares_u1)"),
    Parameter("hp_dm_fraction", 0.0, 1.0, "fraction of heat pumps", "L",
              "heat pumps enrolled in demand management: shares.dm / (shares.dm + shares.un) "
              "(= 1 - cube dimension shares_u2); empty (NaN) without heat pumps, as in the reference case 0"),
)
FACTOR_BY_NAME = {p.name: p for p in FACTORS}

#: unit-cube dimensions, in order: two for the simplex, then one per linearly mapped parameter
CUBE_DIMENSIONS = ("shares_u1", "shares_u2", "ev_perc", "ev_lvl2_perc", "ev_split.controlled",
                   "storage_perc_3ph", "pv_perc_3ph", "pv_perc_res", "storage_perc_res")

#: purpose of each seed of a case, in spawn order; JSON key = SEED_KEYS[purpose]
SEED_KEYS = {
    "heating": "heating_seed",
    "ev_hosts": "ev_seed",
    "ev_sessions": "ev_session_seed",
    "storage": "storage_seed",
    "pv": "pv_seed",
}
#: spawn-key prefix of the placement seeds (one stream per placement replicate, shared by every case
#: and design: common random numbers)
PLACEMENT_SPAWN_KEY = 3

#: every key a case of a mixes file must have
CASE_KEYS = ("shares", "ev_perc", "ev_lvl2_perc", "ev_split", "storage_perc_3ph", "pv_perc_3ph", "pv_perc_res",
             "storage_perc_res", *SEED_KEYS.values(), "disjoint_sets", "design_point", "placement_replicate")


class MixesError(ValueError):
    """A mixes file that cannot be used; the message names the file, the case and the field."""


# ------------------------------------------------------------------------------------------- maps
def simplex_from_cube(u1: np.ndarray, u2: np.ndarray) -> np.ndarray:
    """Uniform points on the 2-simplex from two uniform coordinates: (baseline, dm, un).

    ``s = sqrt(u1)``; baseline = 1 - s, dm = s (1 - u2), un = s u2. The map is measure-preserving,
    so a stratified design of the square stays stratified on the triangle.
    """
    s = np.sqrt(np.asarray(u1, dtype=float))
    u2 = np.asarray(u2, dtype=float)
    return np.column_stack([1.0 - s, s * (1.0 - u2), s * u2])


def factors_from_shares(baseline, dm, un) -> np.ndarray:
    """The independent coordinates (hp_adoption, hp_dm_fraction) of heat-pump shares, shape (n, 2).

    ``hp_adoption = 1 - baseline``; ``hp_dm_fraction = dm / (dm + un)``, NaN where ``dm + un`` is 0
    (no heat pump: the fraction is undefined, and the run carries no information about it).
    """
    baseline = np.atleast_1d(np.asarray(baseline, dtype=float))
    dm = np.atleast_1d(np.asarray(dm, dtype=float))
    un = np.atleast_1d(np.asarray(un, dtype=float))
    pumps = dm + un
    with np.errstate(invalid="ignore", divide="ignore"):
        fraction = np.where(pumps > 0, dm / np.where(pumps > 0, pumps, 1.0), np.nan)
    return np.column_stack([1.0 - baseline, fraction])


def max_abs_correlation(cube: np.ndarray, names: tuple[str, ...] = CUBE_DIMENSIONS,
                        rank: bool = False) -> tuple[float, str]:
    """Largest |correlation| between two columns of a design (Pearson, or Spearman with ``rank``) and
    the pair (``"a~b"``); (nan, "") for fewer than 3 rows or a constant column."""
    cube = np.asarray(cube, dtype=float)
    if cube.ndim != 2 or len(cube) < 3 or cube.shape[1] < 2:
        return math.nan, ""
    if rank:
        from scipy.stats import rankdata
        cube = np.column_stack([rankdata(c) for c in cube.T])
    if (np.ptp(cube, axis=0) == 0).any():
        return math.nan, ""
    corr = np.abs(np.corrcoef(cube, rowvar=False))
    upper = np.triu_indices(cube.shape[1], k=1)
    k = int(np.argmax(corr[upper]))
    i, j = upper[0][k], upper[1][k]
    return float(corr[i, j]), f"{names[i]}~{names[j]}"


def cube_to_cases(cube: np.ndarray) -> list[dict[str, Any]]:
    """Map unit-cube rows (columns in CUBE_DIMENSIONS order) to parameter dictionaries."""
    cube = np.asarray(cube, dtype=float)
    if cube.ndim != 2 or cube.shape[1] != len(CUBE_DIMENSIONS):
        raise ValueError(f"cube must have {len(CUBE_DIMENSIONS)} columns, got shape {cube.shape}")
    shares = simplex_from_cube(cube[:, 0], cube[:, 1])
    cases = []
    for row, share in zip(cube, shares):
        values = {}
        for dim, u in zip(CUBE_DIMENSIONS[2:], row[2:]):
            p = PARAMETER_BY_NAME[dim]
            values[dim] = float(p.low + u * (p.high - p.low))
        controlled = values["ev_split.controlled"]
        cases.append({
            "shares": {"baseline": float(share[0]), "dm": float(share[1]), "un": float(share[2])},
            "ev_perc": values["ev_perc"],
            "ev_lvl2_perc": values["ev_lvl2_perc"],
            "ev_split": {"controlled": controlled, "uncontrolled": 1.0 - controlled},
            "storage_perc_3ph": values["storage_perc_3ph"],
            "pv_perc_3ph": values["pv_perc_3ph"],
            "pv_perc_res": values["pv_perc_res"],
            "storage_perc_res": values["storage_perc_res"],
        })
    return cases


# ------------------------------------------------------------------------------------------- samplers
def sample_lhs(n: int, seed: int) -> np.ndarray:
    """``n`` Latin-hypercube points in the unit cube (scipy.stats.qmc.LatinHypercube with
    ``optimization="random-cd"``: the strata are kept, the columns permuted to lower the centred
    discrepancy, which also lowers the spurious correlations between columns of a small design)."""
    from scipy.stats import qmc  # here, not at import: phase 6 and 7 read mixes without sampling

    sampler = qmc.LatinHypercube(d=len(CUBE_DIMENSIONS), optimization="random-cd",
                                 rng=np.random.default_rng(seed))
    return sampler.random(n)


def sobol_size(n: int) -> int:
    """The Sobol sample size used for a request of ``n``: the next power of two."""
    return 1 << max(0, math.ceil(math.log2(n)))


def sample_sobol(n: int, seed: int) -> np.ndarray:
    """Scrambled Sobol points drawn with ``random_base2``: ``n`` rounded UP to a power of two.

    The sequence is never truncated: a truncated Sobol sample loses the balance that makes it
    worth using.
    """
    m = int(math.log2(sobol_size(n)))
    if (1 << m) != n:
        logger.info("Sobol design: %d cases requested, %d drawn (the next power of two; a Sobol "
                    "sequence is balanced only in powers of two)", n, 1 << m)
    return least_correlated_sobol(len(CUBE_DIMENSIONS), m, seed)


#: scrambles of a Sobol design drawn to keep the least correlated one (:func:`least_correlated_sobol`)
SOBOL_SCRAMBLES = 64


def _max_abs_corr(cube: np.ndarray) -> float:
    if cube.shape[0] < 3 or cube.shape[1] < 2:
        return 0.0
    corr = np.corrcoef(cube.T)
    np.fill_diagonal(corr, 0.0)
    return float(np.nanmax(np.abs(corr)))


def least_correlated_sobol(d: int, m: int, seed: np.random.SeedSequence | int) -> np.ndarray:
    """``2**m`` scrambled Sobol points in ``d`` dimensions: of :data:`SOBOL_SCRAMBLES` independent Owen
    scrambles (seeds spawned from ``seed``), the one whose largest |correlation| between two columns is
    lowest (ties: the first).

    Every scramble is an equally valid randomised net (the balance of the sequence is kept); a small
    design's higher Sobol dimensions are strongly correlated in most scrambles (9 dimensions at 32 points:
    the median scramble's largest |r| is 0.38, 89 % are above common.config.DOE_MAX_ABS_CORR; the best of
    64 about 0.19), which would confound two inputs' effects. Choosing among random scrambles by a design
    criterion is the counterpart of the Latin hypercube's discrepancy optimisation (``random-cd``)."""
    from scipy.stats import qmc

    sequence = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    best, best_r = None, np.inf
    for child in sequence.spawn(SOBOL_SCRAMBLES):
        cube = qmc.Sobol(d=d, scramble=True, rng=np.random.default_rng(child)).random_base2(m)
        r = _max_abs_corr(cube)
        if r < best_r:
            best, best_r = cube, r
    return best


SAMPLERS = {"lhs": sample_lhs, "sobol": sample_sobol}


def discrepancy(cube: np.ndarray) -> float:
    """Centred L2 discrepancy of a design (lower is more uniform)."""
    from scipy.stats import qmc

    return float(qmc.discrepancy(np.asarray(cube, dtype=float)))


# ------------------------------------------------------------------------------------------- seeds
def placement_seeds(master_seed: int, replicate: int) -> dict[str, int]:
    """The 32-bit seed of each purpose of placement replicate ``replicate``, from numpy's SeedSequence.

    Every case of the replicate, in every design, carries these seeds (common random numbers)."""
    if replicate < 0:
        raise ValueError("replicate must be non-negative")
    seeds = {}
    for index, (purpose, key) in enumerate(SEED_KEYS.items()):
        ss = np.random.SeedSequence(entropy=master_seed, spawn_key=(PLACEMENT_SPAWN_KEY, replicate, index))
        seeds[key] = int(ss.generate_state(1, dtype=np.uint32)[0])
    return seeds


def case_key(design_point: int, replicate: int, replicates: int) -> int:
    """The case number of a design point (1..n) and placement replicate (0..R-1); 0 is the reference."""
    if design_point == 0:
        return 0
    return 1 + (design_point - 1) * replicates + replicate


# ------------------------------------------------------------------------------------------- mixes
def build_mixes(design: str, n_cases: int, seed: int, disjoint_sets: bool = config.DISJOINT_SETS,
                replicates: int = 1) -> tuple[dict[str, dict[str, Any]], np.ndarray]:
    """The mixes dictionary of a design (case "0" the reference case) and its unit cube.

    Each of the design's points appears ``replicates`` times, once per placement replicate, with the
    replicate's seeds (:func:`placement_seeds`)."""
    if n_cases < 1:
        raise ValueError("n_cases must be at least 1")
    if replicates < 1:
        raise ValueError("replicates must be at least 1")
    cube = SAMPLERS[design](n_cases, seed)
    mixes: dict[str, dict[str, Any]] = {}
    reference = json.loads(json.dumps(config.REFERENCE_CASE))
    mixes["0"] = {**reference, **placement_seeds(seed, 0), "disjoint_sets": bool(disjoint_sets),
                  "design_point": 0, "placement_replicate": 0, "unit_cube": None}
    for point, (row, case) in enumerate(zip(cube, cube_to_cases(cube)), start=1):
        for replicate in range(replicates):
            mixes[str(case_key(point, replicate, replicates))] = {
                **case, **placement_seeds(seed, replicate), "disjoint_sets": bool(disjoint_sets),
                "design_point": point, "placement_replicate": replicate, "unit_cube": [float(u) for u in row]}
    return mixes, cube


def flatten_case(case: dict[str, Any]) -> dict[str, float]:
    """Parameter values of a case under their flattened names (``shares.dm``, ``ev_split.controlled``)."""
    flat = {}
    for p in PARAMETERS:
        head, _, tail = p.name.partition(".")
        flat[p.name] = float(case[head][tail]) if tail else float(case[head])
    return flat


def validate_case(case: Any, where: str) -> dict[str, Any]:
    """Check one case of a mixes file; raise MixesError naming ``where`` and the field."""
    if not isinstance(case, dict):
        raise MixesError(f"{where}: a case must be a JSON object")
    missing = [key for key in CASE_KEYS if key not in case]
    if missing:
        raise MixesError(f"{where}: missing key {missing[0]!r} (regenerate with 0_code_xlrm/run_mix_generator.py)")
    for sub, keys in (("shares", ("baseline", "dm", "un")), ("ev_split", ("controlled", "uncontrolled"))):
        if not isinstance(case[sub], dict) or any(k not in case[sub] for k in keys):
            raise MixesError(f"{where}: field {sub!r} must hold {', '.join(keys)}")
    numbers = [case["shares"][k] for k in ("baseline", "dm", "un")] + \
        [case["ev_split"][k] for k in ("controlled", "uncontrolled")] + \
        [case[p.name] for p in PARAMETERS if "." not in p.name]
    if any(isinstance(x, bool) or not isinstance(x, (int, float)) for x in numbers):
        raise MixesError(f"{where}: a parameter value is not a number (true/false and strings are not numbers)")
    try:
        flat = flatten_case(case)
        uncontrolled = float(case["ev_split"]["uncontrolled"])
    except (TypeError, ValueError):
        raise MixesError(f"{where}: a parameter value is not a number") from None
    for p in PARAMETERS:
        value = flat[p.name]
        if not (math.isfinite(value) and 0.0 <= value <= 1.0):
            raise MixesError(f"{where}: {p.name} = {value} is outside [0, 1]")
    total = flat["shares.baseline"] + flat["shares.dm"] + flat["shares.un"]
    if abs(total - 1.0) > 1e-6:
        raise MixesError(f"{where}: shares sum to {total:.6f}, not 1")
    if abs(flat["ev_split.controlled"] + uncontrolled - 1.0) > 1e-6:
        raise MixesError(f"{where}: ev_split controlled + uncontrolled = "
                         f"{flat['ev_split.controlled'] + uncontrolled:.6f}, not 1")
    for key in SEED_KEYS.values():
        if isinstance(case[key], bool) or not isinstance(case[key], int) or case[key] < 0:
            raise MixesError(f"{where}: {key} = {json.dumps(case[key])} must be a non-negative integer")
    if not isinstance(case["disjoint_sets"], bool):
        raise MixesError(f"{where}: disjoint_sets must be true or false")
    for key in ("design_point", "placement_replicate"):
        if isinstance(case[key], bool) or not isinstance(case[key], int) or case[key] < 0:
            raise MixesError(f"{where}: {key} = {json.dumps(case[key])} must be a non-negative integer")
    return case


#: phase 0's manifest (beside the mixes files), with the SHA-256 of each mixes file it wrote
PHASE0_MANIFEST = "manifest.json"


def mixes_provenance(path: Path) -> str:
    """Where a mixes file comes from: ``"phase 0"`` when phase 0's manifest beside it records its
    exact bytes, else a sentence saying why not (phase 0 interrupted, or the file edited by hand)."""
    import hashlib

    path = Path(path)
    manifest = path.parent / PHASE0_MANIFEST
    design = path.stem.removeprefix("mixes_")
    try:
        recorded = json.loads(manifest.read_text(encoding="utf-8"))["settings"]["mixes_sha256"][design]
    except (OSError, ValueError, KeyError, TypeError):
        return (f"{manifest} does not record {path.name}: phase 0 was interrupted or the file was written by "
                "hand")
    if recorded != hashlib.sha256(path.read_bytes()).hexdigest():
        return f"{path.name} differs from what phase 0 wrote ({manifest}): edited by hand or phase 0 interrupted"
    return "phase 0"


def load_mixes(path: Path) -> dict[str, dict[str, Any]]:
    """Read and check a mixes JSON; keys are returned in numeric order."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise MixesError(f"{path}: not found (run 0_code_xlrm/run_mix_generator.py)") from None
    except json.JSONDecodeError as exc:
        raise MixesError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}): run "
                         "0_code_xlrm/run_mix_generator.py again") from None
    except UnicodeDecodeError as exc:
        raise MixesError(f"{path}: not UTF-8 text (byte {exc.start}): run 0_code_xlrm/run_mix_generator.py "
                         "again") from None
    except IsADirectoryError:
        raise MixesError(f"{path}: a folder, not the mixes file: move it and run 0_code_xlrm/run_mix_generator.py") from None
    if not isinstance(data, dict) or not data:
        raise MixesError(f"{path}: expected an object of cases keyed \"0\"..\"N\"")
    for key in data:
        if not key.isdigit():
            raise MixesError(f"{path}: case key {key!r} is not a case number")
    return {key: validate_case(data[key], f"{path} case {key}") for key in sorted(data, key=int)}


# ------------------------------------------------------------------------------------------- layouts
# Experiment layouts (phase 0 ``--layout``). ``joint`` is the design above: one sample over every cube
# dimension, uncertainties and levers together. ``cross`` separates them (XLRM; EMA Workbench's
# "scenarios x policies" experiments): S scenarios sampled over the X dimensions only, crossed with P
# policies over the L dimensions (sampled, or named in ``common.config.POLICIES``), a full factorial.
# Everything below derives the split from the roles of PARAMETERS and FACTORS: a parameter added there
# joins the right side without a change here.
LAYOUTS = ("joint", "cross")
#: keys that every case of a cross layout carries besides CASE_KEYS: ``scenario`` (1..S) and ``policy``
#: (1..P) ids and the policy's name. The reference case "0" has ``scenario`` 0 and ``policy`` 0 and the
#: name :data:`REFERENCE_POLICY_NAME`: it is neither a scenario nor a policy of the cross, but the fixed
#: case of common.config.REFERENCE_CASE, as in the joint layout. A joint layout's cases carry none of them.
LAYOUT_KEYS = ("scenario", "policy", "policy_name")
REFERENCE_POLICY_NAME = "reference case"
#: spawn-key prefix of the sampled policies' sampler (independent of the design and of the scenarios, so
#: that policy p is the same policy in every design's mixes file)
POLICY_SPAWN_KEY = 5
#: decimals the values of a cross case are rounded to, so that a named policy's lever reads as written
#: (0, not 5.6e-17 after the linear map and back)
CROSS_DECIMALS = 12


def dimension_roles() -> dict[str, str]:
    """The XLRM role (``"X"`` or ``"L"``) of every cube dimension, in CUBE_DIMENSIONS order.

    A dimension that is a parameter (linearly mapped) has the parameter's role; the dimensions that
    are not (the heat-pump simplex) have, in order, the role of the FACTORS (``hp_adoption`` is a function
    of the first simplex dimension only, ``hp_dm_fraction`` of the second)."""
    simplex = [d for d in CUBE_DIMENSIONS if d not in PARAMETER_BY_NAME]
    if len(simplex) != len(FACTORS):
        raise ValueError(f"{len(simplex)} cube dimensions are not parameters but there are {len(FACTORS)} factors")
    factor_of = dict(zip(simplex, FACTORS))
    return {d: (PARAMETER_BY_NAME[d].role if d in PARAMETER_BY_NAME else factor_of[d].role) for d in CUBE_DIMENSIONS}


def lever_of_dimension() -> dict[str, Parameter]:
    """Every L cube dimension and the input a policy sets it by: the parameter itself, or for a simplex
    dimension its factor (a policy sets ``hp_dm_fraction``, not a cube coordinate)."""
    simplex = [d for d in CUBE_DIMENSIONS if d not in PARAMETER_BY_NAME]
    factor_of = dict(zip(simplex, FACTORS))
    roles = dimension_roles()
    return {d: PARAMETER_BY_NAME.get(d) or factor_of[d] for d in CUBE_DIMENSIONS if roles[d] == "L"}


def split_dimensions() -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Column indices of the X and of the L dimensions of the unit cube."""
    roles = dimension_roles()
    x = tuple(i for i, d in enumerate(CUBE_DIMENSIONS) if roles[d] == "X")
    lever = tuple(i for i, d in enumerate(CUBE_DIMENSIONS) if roles[d] == "L")
    return x, lever


def lever_names() -> tuple[str, ...]:
    """The names a policy sets, in cube order (e.g. hp_dm_fraction, ev_split.controlled, storage_perc_3ph)."""
    return tuple(p.name for p in lever_of_dimension().values())


def sample_unit(design: str, n: int, d: int, seed: np.random.SeedSequence | int) -> np.ndarray:
    """``n`` points of the d-dimensional unit cube with the design's sampler: a Latin hypercube with
    ``optimization="random-cd"`` (``lhs``) or the least correlated of several scrambled Sobol sequences,
    rounded up to a power of two (``sobol``, :func:`least_correlated_sobol`), as :func:`sample_lhs` and
    :func:`sample_sobol` do for the whole cube."""
    from scipy.stats import qmc

    rng = np.random.default_rng(seed)
    if design == "lhs":
        return qmc.LatinHypercube(d=d, optimization="random-cd", rng=rng).random(n)
    if design == "sobol":
        return least_correlated_sobol(d, int(math.log2(sobol_size(n))), seed)
    raise ValueError(f"unknown design {design!r}: one of {', '.join(SAMPLERS)}")


def named_policies(policies: dict[str, dict[str, Any]] | None = None) -> list[tuple[str, dict[str, float]]]:
    """The named policies of ``common.config.POLICIES`` (name, lever values), in the order written.

    Every policy must set every lever (:func:`lever_names`) to a number in [0, 1] and nothing else: a
    lever left out is an error naming it (never a silent default), so that a lever added to
    PARAMETERS is decided for each policy."""
    policies = config.POLICIES if policies is None else policies
    levers = lever_names()
    out = []
    for name, spec in policies.items():
        values = spec.get("levers") if isinstance(spec, dict) else None
        if not isinstance(values, dict):
            raise MixesError(f"common.config.POLICIES[{name!r}]: needs a 'levers' mapping of {', '.join(levers)}")
        missing = [k for k in levers if k not in values]
        if missing:
            raise MixesError(f"common.config.POLICIES[{name!r}] does not set lever {missing[0]!r}: add its value "
                             f"(levers: {', '.join(levers)})")
        unknown = sorted(set(values) - set(levers))
        if unknown:
            raise MixesError(f"common.config.POLICIES[{name!r}]: {unknown[0]!r} is not a lever (an L input of "
                             f"common.doe.PARAMETERS or FACTORS); levers: {', '.join(levers)}")
        for k in levers:
            v = values[k]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (0.0 <= float(v) <= 1.0):
                raise MixesError(f"common.config.POLICIES[{name!r}]: lever {k} = {v!r} must be a number in [0, 1]")
        out.append((str(name), {k: float(values[k]) for k in levers}))
    if not out:
        raise MixesError("common.config.POLICIES is empty: name at least one policy, or sample them (--policies N)")
    return out


def policy_coordinates(values: dict[str, float]) -> np.ndarray:
    """The L cube coordinates of a policy's lever values (the inverse of the maps of cube_to_cases):
    ``hp_dm_fraction = 1 - u`` for the simplex dimension, ``low + u (high - low)`` for a parameter. A
    value outside a parameter's design bounds (e.g. no managed charging, below the joint design's 20 %)
    gives a coordinate outside [0, 1]; the map is linear, so it still lands on the value."""
    coords = []
    for dim, p in lever_of_dimension().items():
        v = float(values[p.name])
        if dim in PARAMETER_BY_NAME:
            coords.append((v - p.low) / (p.high - p.low))
        else:
            coords.append(1.0 - v)
    return np.array(coords, dtype=float)


def _rounded(value: Any, decimals: int = CROSS_DECIMALS) -> Any:
    if isinstance(value, dict):
        return {k: _rounded(v, decimals) for k, v in value.items()}
    if isinstance(value, float):
        return round(value, decimals) + 0.0  # + 0.0: no "-0.0"
    return value


def policy_table(n_policies: int | None, seed: int) -> tuple[list[tuple[str, np.ndarray]], np.ndarray | None]:
    """The policies of a cross layout: (name, L cube coordinates) each, and the sampled policies' unit
    cube (None for the named ones). ``n_policies`` None: common.config.POLICIES; else that many policies
    drawn by a Latin hypercube over the L dimensions (seeded from ``seed`` with POLICY_SPAWN_KEY, the
    same in every design), named "policy <p>"."""
    if n_policies is None:
        return [(name, policy_coordinates(values)) for name, values in named_policies()], None
    if n_policies < 1:
        raise ValueError("n_policies must be at least 1")
    _, lever = split_dimensions()
    cube = sample_unit("lhs", n_policies, len(lever), np.random.SeedSequence(seed, spawn_key=(POLICY_SPAWN_KEY,)))
    return [(f"policy {p}", row) for p, row in enumerate(cube, start=1)], cube


def build_cross_mixes(design: str, n_scenarios: int, seed: int, n_policies: int | None = None,
                      disjoint_sets: bool = config.DISJOINT_SETS, replicates: int = 1
                      ) -> tuple[dict[str, dict[str, Any]], np.ndarray, dict[str, np.ndarray | None]]:
    """The mixes of a cross layout: ``n_scenarios`` scenarios (the design's sampler over the X dimensions,
    Sobol rounded up to a power of two) x the policies of :func:`policy_table`, x ``replicates``.

    Design point ``(s - 1) P + p`` is scenario s under policy p; its case is ``case_key(point, r, R)``
    as in the joint layout, so case "0" is the reference case and the keys run "0".."N". Every case of
    scenario s has the same X values whatever the policy, and every case of replicate r the replicate's
    placement seeds (common random numbers): two policies' instances of one scenario differ only in
    what the policies set. Returns the mixes, the full unit cube of the design points (X columns from
    the scenarios, L columns the policies' coordinates, outside [0, 1] for a named lever outside the
    design bounds) and the sub-designs ``{"scenarios": cube, "policies": cube or None}`` (the
    confounding check applies to each)."""
    if n_scenarios < 1:
        raise ValueError("n_scenarios must be at least 1")
    if replicates < 1:
        raise ValueError("replicates must be at least 1")
    x_cols, l_cols = split_dimensions()
    scenarios = sample_unit(design, n_scenarios, len(x_cols), seed)
    policies, policy_cube = policy_table(n_policies, seed)
    n_p = len(policies)
    mixes: dict[str, dict[str, Any]] = {}
    reference = json.loads(json.dumps(config.REFERENCE_CASE))
    mixes["0"] = {**reference, **placement_seeds(seed, 0), "disjoint_sets": bool(disjoint_sets),
                  "design_point": 0, "placement_replicate": 0, "unit_cube": None,
                  "scenario": 0, "policy": 0, "policy_name": REFERENCE_POLICY_NAME}
    rows = []
    for s, x_row in enumerate(scenarios, start=1):
        for p, (name, l_row) in enumerate(policies, start=1):
            row = np.empty(len(CUBE_DIMENSIONS))
            row[list(x_cols)] = x_row
            row[list(l_cols)] = l_row
            rows.append((s, p, name, row))
    cube = np.array([r for *_, r in rows]).reshape(len(rows), len(CUBE_DIMENSIONS))
    for point, ((s, p, name, row), case) in enumerate(zip(rows, cube_to_cases(cube)), start=1):
        case = _rounded(case)
        for replicate in range(replicates):
            mixes[str(case_key(point, replicate, replicates))] = {
                **case, **placement_seeds(seed, replicate), "disjoint_sets": bool(disjoint_sets),
                "design_point": point, "placement_replicate": replicate,
                "unit_cube": [round(float(u), CROSS_DECIMALS) + 0.0 for u in row],
                "scenario": s, "policy": p, "policy_name": name}
    assert len(mixes) == 1 + len(scenarios) * n_p * replicates
    return mixes, cube, {"scenarios": scenarios, "policies": policy_cube}


def case_layout(case: dict[str, Any]) -> str:
    """``"cross"`` for a case with scenario and policy ids, else ``"joint"``."""
    return "cross" if all(k in case for k in LAYOUT_KEYS) else "joint"


def validate_layout(mixes: dict[str, dict[str, Any]], where: str) -> str:
    """The layout of a mixes dictionary (as :func:`load_mixes` returns it), checked: either no case has
    scenario/policy ids (joint) or every case has non-negative integer ids and a policy name, 0 only for
    the reference case "0" (cross); raise MixesError naming ``where``, the case and the field."""
    layouts = {key: case_layout(case) for key, case in mixes.items()}
    if set(layouts.values()) == {"joint"}:
        return "joint"
    for key, case in mixes.items():
        if layouts[key] != "cross":
            field_ = next(k for k in LAYOUT_KEYS if k not in case)
            raise MixesError(f"{where} case {key}: missing key {field_!r} while other cases have scenario and policy "
                             "ids (regenerate with 0_code_xlrm/run_mix_generator.py)")
        for k in ("scenario", "policy"):
            v = case[k]
            if isinstance(v, bool) or not isinstance(v, int) or v < 0 or ((v == 0) != (key == "0")):
                raise MixesError(f"{where} case {key}: {k} = {json.dumps(v)} must be a positive integer (0 only for "
                                 "the reference case \"0\")")
        if not isinstance(case["policy_name"], str) or not case["policy_name"]:
            raise MixesError(f"{where} case {key}: policy_name must be a non-empty string")
    return "cross"


def uncertainty_names() -> tuple[str, ...]:
    """The independent inputs that make a scenario, in cube order: the X dimensions as the analysis names
    them (a simplex dimension by its factor, e.g. hp_adoption; a parameter by its name). The shares
    ``shares.un`` and ``shares.dm`` depend on the policy too and are not among them."""
    simplex = [d for d in CUBE_DIMENSIONS if d not in PARAMETER_BY_NAME]
    factor_of = dict(zip(simplex, FACTORS))
    roles = dimension_roles()
    return tuple((PARAMETER_BY_NAME.get(d) or factor_of[d]).name for d in CUBE_DIMENSIONS if roles[d] == "X")
