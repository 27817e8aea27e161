# Two commands for a new user:  make run   and   make test   (see README.md).
# Everything runs in a virtual environment made here from requirements.txt.
#
# make run      install, build the embedded sample if missing, run every phase on it in order
# make test     the test suite
# Variables:    DATA (workspace, default ./data), STATES, SEASONS, DESIGNS, N_CASES, WORKERS, SOURCE

PYTHON  ?= python3
VENV    ?= .venv
DATA    ?= data
STATES  ?= NC TX CA
SEASONS ?= summer winter
DESIGNS ?= lhs sobol
N_CASES ?= 16
WORKERS ?= 2
# where phase 1c downloads from: the embedded sample (offline); set SOURCE= to use the OEDI bucket
SOURCE  ?= $(DATA)/sample/oedi

PY        := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
SAMPLE    := $(DATA)/sample/sample_manifest.json
DD        := --data-dir $(DATA)
SRC       := $(if $(SOURCE),--source $(SOURCE),)

.PHONY: run test install sample clean-results

install: $(INSTALLED)

$(INSTALLED): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

sample: $(SAMPLE)

$(SAMPLE): $(INSTALLED)
	$(PY) sample/build_sample.py $(DD)

run: $(INSTALLED) $(SAMPLE)
	@set -e; \
	echo "== phase 0: designs of experiments"; \
	$(PY) 0_code_xlrm/run_mix_generator.py $(DD) --n-cases $(N_CASES); \
	for state in $(STATES); do \
	  S="$(DD) --state $$state"; \
	  echo "== $$state phase 1c: SMART-DS feeders and EULP metadata"; \
	  $(PY) 1c_eulp_downloads/download_smartds.py $$S $(SRC) -q; \
	  $(PY) 1c_eulp_downloads/download_parquets_homes.py $$S $(SRC) --metadata-only -q; \
	  $(PY) 1c_eulp_downloads/download_parquets_commercial.py $$S $(SRC) --metadata-only -q; \
	  echo "== $$state phase 1b: feeders matched to EULP buildings"; \
	  for step in copy_circuits circuit_make_daily_list_sets review_parquet_matches match_smartds_parquets \
	              clean_up_bldgs select_rep_family; do \
	    $(PY) 1b_smartds_eulp_match/$$step.py $$S; \
	  done; \
	  echo "== $$state phase 1c: the chosen buildings' time series"; \
	  $(PY) 1c_eulp_downloads/download_parquets_homes.py $$S $(SRC) -q; \
	  $(PY) 1c_eulp_downloads/download_parquets_commercial.py $$S $(SRC) -q; \
	  echo "== $$state phases 2-5: design days and daily profiles"; \
	  $(PY) 2_profiles_heat_pumps/scale_feeder_curves.py $$S; \
	  $(PY) 2_profiles_heat_pumps/find_max_day_curve.py $$S; \
	  $(PY) 3_kvar_kw_prep/rev_spec_kvar_kw_ratio.py $$S; \
	  $(PY) 2_profiles_heat_pumps/get_scenario_csv_controls.py $$S; \
	  $(PY) 4_profiles_heat_pumps_dm/make_dm_profiles.py $$S; \
	  $(PY) 5_profiles_heat_pumps_un/make_un_profiles.py $$S; \
	  $(PY) 2_profiles_heat_pumps/plot_parquet_differences.py $$S; \
	  for season in $(SEASONS); do for design in $(DESIGNS); do \
	    echo "== $$state phase 6: $$season $$design instances and power flows"; \
	    $(PY) 6_instantiate_circuits/instantiate_circuits_and_runs_APPLYFILTER.py $$S --season $$season \
	      --design $$design --run --workers $(WORKERS); \
	  done; done; \
	done; \
	echo "== phase 7: combined results, sensitivity, scenario discovery, plots, report"; \
	$(PY) 7_results_analysis/append_experiment_results.py $(DD); \
	$(PY) 7_results_analysis/append_xlrm_long_format.py $(DD); \
	$(PY) 7_results_analysis/sensitivity_analysis.py $(DD) --workers $(WORKERS); \
	$(PY) 7_results_analysis/scenario_discovery.py $(DD); \
	$(PY) 7_results_analysis/plot_results.py $(DD); \
	$(PY) 7_results_analysis/make_report.py $(DD)
	@echo
	@echo "Done. Results are in $(DATA)/:"
	@echo "  designs of experiments and plots:  $(DATA)/0_code_xlrm/"
	@echo "  feeder/building matches:           $(DATA)/1b_smartds_eulp_match/<STATE>/"
	@echo "  design-day profiles and plots:     $(DATA)/2_profiles_heat_pumps/<STATE>/plots/"
	@echo "  circuit instances and runs:        $(DATA)/6_instantiate_circuits/<STATE>/<season>/<design>/"
	@echo "  combined results, sensitivity, PRIM, plots: $(DATA)/7_results_analysis/"
	@echo "  the report (open in a browser):    $(abspath $(DATA))/7_results_analysis/report.html"

test: $(INSTALLED)
	$(PY) -m pytest -q

clean-results:
	rm -rf $(DATA)/0_code_xlrm $(DATA)/1b_smartds_eulp_match $(DATA)/1c_eulp_downloads $(DATA)/smartds \
	       $(DATA)/2_profiles_heat_pumps $(DATA)/3_kvar_kw_prep $(DATA)/4_profiles_heat_pumps_dm \
	       $(DATA)/5_profiles_heat_pumps_un $(DATA)/6_instantiate_circuits $(DATA)/7_results_analysis
