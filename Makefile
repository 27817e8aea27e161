# Two commands for a new user:  make run   and   make test   (see README.md).
# Everything runs in a virtual environment made here from requirements.txt.

PYTHON  ?= python3
VENV    ?= .venv
DATA    ?= data
STATES  ?= NC TX CA
SEASONS ?= summer winter
DESIGNS ?= lhs sobol
WORKERS ?= 2

PY        := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
SAMPLE    := $(DATA)/sample/sample_manifest.json
DD        := --data-dir $(DATA)

.PHONY: run test install sample phases clean-results

install: $(INSTALLED)

$(INSTALLED): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

sample: $(SAMPLE)

$(SAMPLE): $(INSTALLED)
	$(PY) sample/build_sample.py $(DD)

run: $(INSTALLED) $(SAMPLE)
	$(PY) 0_code_xlrm/run_mix_generator.py $(DD)
	@echo
	@echo "Done. Results are in $(DATA)/:"
	@echo "  designs of experiments and plots: $(DATA)/0_code_xlrm/"

test: $(INSTALLED)
	$(PY) -m pytest -q

clean-results:
	rm -rf $(DATA)/0_code_xlrm $(DATA)/1b_smartds_eulp_match $(DATA)/1c_eulp_downloads $(DATA)/smartds \
	       $(DATA)/2_profiles_heat_pumps $(DATA)/3_kvar_kw_prep $(DATA)/4_profiles_heat_pumps_dm \
	       $(DATA)/5_profiles_heat_pumps_un $(DATA)/6_instantiate_circuits $(DATA)/7_results_analysis
