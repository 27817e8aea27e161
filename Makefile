# Two commands for a new user:  make run   and   make test   (see README.md).
# Everything runs in a virtual environment made here from requirements.txt (the lock).
#
# make run      install, then run every step on the embedded sample in order (run_pipeline.py walks the
#               step table in common/steps.py: the sample, phases 0, 1c, 1b, 1c, 2-5, 6, 7)
#               in the cross layout: SCENARIOS (8) scenarios per design over the uncertainties X x the four
#               named policies of common.config.POLICIES (32 cases per design, as the joint design had), or
#               POLICIES=N sampled policies; LAYOUT=joint (or giving N_CASES=N) runs the joint design instead
# make study    the study profile: the same pipeline with STUDY_SCENARIOS (64) scenarios x the named policies
#               (256 cases per design; STUDY_LAYOUT=joint: STUDY_N_CASES (256) joint cases) and
#               STUDY_REPLICATES (2) placement replicates per design point, on the sample feeders of
#               STUDY_STATES and STUDY_SEASONS (default every state and season), in its own workspace
#               STUDY_DATA (default $(DATA)/study, with its own sample), so the quick run stays as it is; with
#               phase 6's upgrade step on (STUDY_UPGRADES, default 1: every run that violates a limit is upgraded
#               and priced, 6_instantiate_circuits/upgrade_circuit.py), so the report says what it costs to fix
# make test     the test suite
# make install  only the virtual environment
# Variables:    DATA (workspace, default ./data), STATES, SEASONS, DESIGNS, LAYOUT (cross or joint), SCENARIOS,
#               POLICIES (cross layout; empty: the named policies), N_CASES (joint layout), REPLICATES (placement
#               replicates per design point, default 1), DAYS (design days per run, default 1), UPGRADES
#               (1: phase 6 --upgrades; default 0 for make run),
#               WORKERS, SOURCE, PYTHON (the interpreter to make .venv with), VENV (default .venv); for make study
#               STUDY_DATA, STUDY_LAYOUT, STUDY_SCENARIOS, STUDY_N_CASES, STUDY_REPLICATES, STUDY_STATES,
#               STUDY_SEASONS, STUDY_UPGRADES (default 1; e.g. make study STUDY_STATES=NC STUDY_SEASONS=winter)
#
# Why make run's cross layout with 8 scenarios x 4 named policies: the same 32 cases per design (the same
# phase 6 time) as the joint design's 32 points, and every feeder and season then has 16 scenarios (8 LHS +
# 8 Sobol) per policy, enough for a satisficing share and a PRIM search of the most robust policy's failures
# (scenario_discovery's 10-run floor); the study's 64 x 4 gives 128 scenarios per policy and feeder.
#
# Why make run's 32 cases per design: 16 points of a 7-dimensional Sobol design always hold a column pair
# correlated near |r| = 0.75 (phase 0 warns), and 2 x 32 runs per feeder and season are the fewest at which
# the sample's winter-peak driver (hp_adoption) stands above the dummy on every NC feeder.
# Why the study defaults: at 32 cases most pooled indices are still inside the dummy
# input's interval ("too few runs to rank inputs"); 256 per design (512 runs per feeder and season) is
# a power of two (a balanced Sobol sequence whose N/4 and N/2 heads are balanced too, for the
# convergence table). Two placement replicates are the fewest that measure how much placement alone
# moves each metric (placement_spread.csv: the SD across a design point's two replicates, median over
# 512 design points); they double the runs. Every state and season: the sample feeders are small (the
# NC 2,000-customer feeder takes most of the time), and the verdicts are per state and season.
#
# Python: the baseline is $(MIN_PYTHON) (pyproject.toml's requires-python). tools/find_python.sh takes the
# first interpreter that runs and reports >= $(MIN_PYTHON): $(PYTHON) if you set it (and then only it),
# else python3.13, python3.12, python3, then pyenv's installed versions (`pyenv root`/versions/3.1[2-9]*),
# or stops with one line saying what to install. A $(VENV) made by an older Python (or one whose Python
# no longer runs) is removed and made again (tools/make_venv.sh), never silently reused.

MIN_PYTHON := 3.12
# one BLAS thread per process: phases run their own process pools on few cores (a multi-threaded
# OpenBLAS made the sensitivity estimates ~30x slower on 2 shared cores)
export OPENBLAS_NUM_THREADS ?= 1
PYTHON  ?=
VENV    ?= .venv
DATA    ?= data
STATES  ?= NC TX CA
SEASONS ?= summer winter
DESIGNS ?= lhs sobol
N_CASES ?= 32
SCENARIOS ?= 8
POLICIES ?=
# giving N_CASES (command line or environment) asks for the joint design, unless LAYOUT is given too
ifeq ($(origin N_CASES),file)
LAYOUT ?= cross
else
LAYOUT ?= joint
endif
REPLICATES ?= 1
# phase 6's upgrade step (--upgrades): off in make run (it adds a few seconds per failing run on the large NC
# feeder, about 2x its power flow), on in make study
UPGRADES ?= 0
# design days per feeder and season (phase 2 and 6 --days): each run on its K highest peak days, the worst reported
DAYS ?= 1
WORKERS ?= 2
STUDY_DATA       ?= $(DATA)/study
STUDY_N_CASES    ?= 256
STUDY_LAYOUT     ?= cross
STUDY_SCENARIOS  ?= 64
STUDY_REPLICATES ?= 2
STUDY_STATES     ?= $(STATES)
STUDY_SEASONS    ?= $(SEASONS)
STUDY_UPGRADES   ?= 1
# where phase 1c downloads from: the embedded sample (offline); set SOURCE= to use the OEDI bucket
SOURCE  ?= $(DATA)/sample/oedi

PY        := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
SAMPLE    := $(DATA)/sample/sample_manifest.json
DD        := --data-dir $(DATA)
SRC       := $(if $(SOURCE),--source $(SOURCE),)
UPG       := $(if $(filter 1 yes true on,$(UPGRADES)), --upgrades,)
DOE       := $(if $(filter cross,$(LAYOUT)),--layout cross --scenarios $(SCENARIOS)$(if $(POLICIES), --policies \
             $(POLICIES),),--layout $(LAYOUT) --n-cases $(N_CASES))

.PHONY: run study test install sample clean-results FORCE

install: $(INSTALLED)

# an existing $(VENV) whose Python is too old or no longer runs is made again whatever the time stamps say
ifneq ($(shell sh tools/find_python.sh --check $(PY) $(MIN_PYTHON) && echo ok),ok)
$(INSTALLED): FORCE
endif

$(INSTALLED): requirements.txt pyproject.toml
	@PYTHON="$(PYTHON)" sh tools/make_venv.sh $(VENV) $(MIN_PYTHON)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

sample: $(SAMPLE)

$(SAMPLE): $(INSTALLED)
	$(PY) sample/build_sample.py $(DD)

run: $(INSTALLED)
	$(PY) run_pipeline.py $(DD) --states $(STATES) --seasons $(SEASONS) --designs $(DESIGNS) --days $(DAYS) \
	    $(DOE) --replicates $(REPLICATES) --workers $(WORKERS)$(UPG) $(SRC)
	@echo
	@echo "Done. Results are in $(DATA)/:"
	@echo "  designs of experiments and plots:  $(DATA)/0_code_xlrm/"
	@echo "  feeder/building matches:           $(DATA)/1b_smartds_eulp_match/<STATE>/"
	@echo "  design-day profiles and plots:     $(DATA)/2_profiles_heat_pumps/<STATE>/plots/"
	@echo "  circuit instances and runs:        $(DATA)/6_instantiate_circuits/<STATE>/<season>/<design>/"
	@echo "  combined results, sensitivity, PRIM, robustness, plots: $(DATA)/7_results_analysis/"
	@echo "  the report (open in a browser):    $(abspath $(DATA))/7_results_analysis/report.html"

# the study profile: make run again with the study's settings in the study's workspace (SOURCE, unless
# set, follows DATA to the study's own sample)
study: $(INSTALLED)
	$(MAKE) --no-print-directory run DATA="$(STUDY_DATA)" LAYOUT=$(STUDY_LAYOUT) SCENARIOS=$(STUDY_SCENARIOS) \
	    N_CASES=$(STUDY_N_CASES) REPLICATES=$(STUDY_REPLICATES) STATES="$(STUDY_STATES)" SEASONS="$(STUDY_SEASONS)" \
	    UPGRADES=$(STUDY_UPGRADES)

test: $(INSTALLED)
	$(PY) -m pytest -q

clean-results:
	rm -rf $(DATA)/0_code_xlrm $(DATA)/1b_smartds_eulp_match $(DATA)/1c_eulp_downloads $(DATA)/smartds \
	       $(DATA)/2_profiles_heat_pumps $(DATA)/3_kvar_kw_prep $(DATA)/4_profiles_heat_pumps_dm \
	       $(DATA)/5_profiles_heat_pumps_un $(DATA)/6_instantiate_circuits $(DATA)/7_results_analysis
