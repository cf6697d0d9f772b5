# MPCL: make help lists every target. Everything runs inside .venv, created on first use.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_SYS ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
MPCL := $(PY) -m mpcl
TORCH_VERSION ?= 2.13.0
CONFIG ?= experiments/synthetic/mlp.yaml
PROTOCOL ?= kfold
DATASET ?= synthetic
SEEDS ?= 3407
ARGS ?=
# Device of `make bench`: cpu or cuda.
DEVICE ?= cpu
RUNNER := $(PY) -m mpcl.runner.cli
ABLATIONS := single_scale concat_fusion no_prototypes no_prd no_retrieval no_valence_prior \
	flat_head physiological_only behavioral_only
ABLATION_DIR = runs/ablations/$(DATASET)-$(PROTOCOL)
# Baseline table: every method whose experiments/$(DATASET)/<name>.yaml exists (HeLo included when
# its YAML is there); the per-subject mean only under the subject-dependent protocols.
BASELINES := trivial_uniform trivial_train_mean aa_knn sa_bfgs mlp late_fusion cross_attention helo
SUBJECT_DEPENDENT_PROTOCOLS := random-window temporal clip-holdout
BASELINE_DIR = runs/baselines/$(DATASET)-$(PROTOCOL)
BASELINE_RUNS = $(foreach b,$(BASELINES) \
	$(if $(filter $(PROTOCOL),$(SUBJECT_DEPENDENT_PROTOCOLS)),trivial_subject_mean),\
	$(if $(wildcard experiments/$(DATASET)/$(b).yaml),$(b)))
# Robustness protocol and data-size curve (docs/robustness.md). The defaults are the quick setting
# (a few minutes on 2 cores); the full setting is in docs/robustness.md.
ROBUSTNESS_MODELS ?= mpcl mlp
ROBUSTNESS_ARGS ?= --trainer.max_epochs=3
ROBUSTNESS_DIR ?= runs/robustness/$(DATASET)-$(PROTOCOL)-quick
DATASIZE_SIZES ?= $(if $(filter $(PROTOCOL),$(SUBJECT_DEPENDENT_PROTOCOLS)),0.1 0.25 0.5 0,2 4 8 0)
DATASIZE_DIR ?= runs/datasize/$(DATASET)-$(PROTOCOL)-quick
# Tests never talk to a W&B server.
export WANDB_MODE ?= disabled

STAMP := $(VENV)/.installed

.PHONY: help install demo report test test-full lint format fit protocol ablations baselines sweep agent clean many-subjects many-bench bench robustness datasize gpu-check

help: ## List the targets
	@grep -hE '^[a-zA-Z_%-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON_SYS) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first and pinned: an unpinned torch (also one pulled in by lightning) is a multi-GB CUDA build
	$(PY) -m pip install --quiet "torch==$(TORCH_VERSION)"
	$(PY) -m pip install --quiet -e ".[dev,raw,icalabel]" "torch==$(TORCH_VERSION)"
	# reference implementation of the metrics for the tests; its heavy extras are not needed
	$(PY) -m pip install --quiet --no-deps "python-ldl==0.1.2"
	touch $(STAMP)

install: $(STAMP) ## Create .venv, install the pinned CPU torch first, then the project with dev tools

demo: $(STAMP) ## Train the main model on the built-in synthetic data set, print its test metrics, write its report
	time $(MPCL) fit --config experiments/synthetic/mpcl.yaml --test_after_fit true \
		--trainer.logger.init_args.name demo $(ARGS)
	$(MPCL) report runs/demo

report: $(STAMP) ## Figures and a self-contained report.html: make report RUN=runs/demo (several RUN folders: a comparison)
	@test -n "$(RUN)" || { echo "usage: make report RUN=<run folder> [RUN=\"A B\" compares]" >&2; exit 2; }
	$(MPCL) report $(RUN) $(ARGS)

# pytest exits 5 when it collects nothing: say so loudly and fail, never pass silently.
# One thread per process: the DDP tests run two processes at once, and tiny tensors gain nothing
# from a second thread (oversubscribed cores made some tests 10x slower).
define run_pytest
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(PY) -m pytest -q $(1) $(ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests (exit 5)" >&2; fi; exit $$status
endef

test: $(STAMP) ## Run the default test suite (slow tests excluded)
	$(call run_pytest,)

test-full: $(STAMP) ## Run every test, the slow ones included
	$(call run_pytest,-m "slow or not slow")

lint: $(STAMP) ## Check style with ruff (lint and format check)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(STAMP) ## Format and autofix with ruff
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

fit: $(STAMP) ## Train with a config: make fit CONFIG=experiments/dmer/mlp.yaml ARGS="--data.root DIR"
	$(MPCL) fit --config $(CONFIG) $(ARGS)

.PHONY: extract-dmer
extract-dmer: $(STAMP) ## Raw DMER recordings to feature files: make extract-dmer RAW=DIR OUT=DIR [ARGS="--workers 2"]
	@test -n "$(RAW)" -a -n "$(OUT)" || { echo "usage: make extract-dmer RAW=<raw dir> OUT=<feature dir> [ARGS=...]" >&2; exit 2; }
	$(VENV)/bin/mpcl-extract dmer $(RAW) $(OUT) $(ARGS)

protocol: $(STAMP) ## Run CONFIG over every fold of PROTOCOL and print the table (ARGS go to every fold)
	$(RUNNER) run --config $(CONFIG) --protocol $(PROTOCOL) --seeds $(SEEDS) $(if $(ARGS),-- $(ARGS))

# Subject-dependent protocols only; the command line's PROTOCOL=... still wins.
many-subjects many-bench: PROTOCOL = random-window
BASELINE_FOLDS ?= 10

many-subjects: $(STAMP) ## Every subject's model of a subject-dependent PROTOCOL at once (ARGS: LightningCLI overrides)
	$(PY) -m mpcl.multisubject --config $(CONFIG) --protocol $(PROTOCOL) --seeds $(SEEDS) $(if $(ARGS),-- $(ARGS))

many-bench: $(STAMP) ## Time many-subjects vs one-by-one on 73 synthetic subjects (baselines on BASELINE_FOLDS, scaled)
	$(PY) -m mpcl.multisubject.bench --config $(CONFIG) --protocol $(PROTOCOL) \
		--baseline-folds $(BASELINE_FOLDS) --output runs/many-subjects-bench/$(notdir $(basename $(CONFIG))) \
		-- --data.init_args.num_subjects=73 $(ARGS)

bench: $(STAMP) ## Speed, memory and Lightning overhead of every model: make bench DEVICE=cuda ARGS="--threads 1"
	$(PY) -m benchmarks.bench --device $(DEVICE) $(ARGS)

gpu-check: $(STAMP) ## Every GPU measurement of docs/benchmarks.md in one time-boxed run (OUT=runs/gpu-check)
	OUT=$${OUT:-runs/gpu-check} PY=$(PY) bash benchmarks/gpu_check.sh

ablate-full: $(STAMP) ## Full MPCL on DATASET under PROTOCOL (the reference row of the ablation table)
	$(RUNNER) run --config experiments/$(DATASET)/mpcl.yaml --protocol $(PROTOCOL) --seeds $(SEEDS) \
		--name full --output $(ABLATION_DIR)/full $(if $(ARGS),-- $(ARGS))

ablate-%: $(STAMP) ## One ablation, e.g. make ablate-no_prd DATASET=synthetic PROTOCOL=kfold
	$(RUNNER) run --config experiments/$(DATASET)/mpcl.yaml --config experiments/ablations/$*.yaml \
		--protocol $(PROTOCOL) --seeds $(SEEDS) --name $* --output $(ABLATION_DIR)/$* $(if $(ARGS),-- $(ARGS))

ablations: ablate-full $(addprefix ablate-,$(ABLATIONS)) ## Every ablation, then one table (rows: full model and each ablation)
	$(RUNNER) compare $(ABLATION_DIR)/full $(addprefix $(ABLATION_DIR)/,$(ABLATIONS)) \
		--reference full --output $(ABLATION_DIR)/ablations

baseline-%: $(STAMP) ## One method of the baseline table, e.g. make baseline-aa_knn DATASET=synthetic PROTOCOL=kfold
	$(RUNNER) run --config experiments/$(DATASET)/$*.yaml --protocol $(PROTOCOL) --seeds $(SEEDS) \
		--name $* --output $(BASELINE_DIR)/$* $(if $(ARGS),-- $(ARGS))

baselines: baseline-mpcl $(addprefix baseline-,$(BASELINE_RUNS)) ## MPCL and every baseline over PROTOCOL's folds, then one table with MPCL's Wilcoxon tests
	$(RUNNER) compare $(BASELINE_DIR)/mpcl $(addprefix $(BASELINE_DIR)/,$(BASELINE_RUNS)) \
		--reference mpcl --output $(BASELINE_DIR)/baselines

robustness: $(STAMP) ## Train ROBUSTNESS_MODELS once per fold, test each with missing/noisy modalities: table + degradation figure
	$(RUNNER) robustness --models $(ROBUSTNESS_MODELS) --dataset $(DATASET) --protocol $(PROTOCOL) \
		--seeds $(SEEDS) --output $(ROBUSTNESS_DIR) -- $(ROBUSTNESS_ARGS)

datasize: $(STAMP) ## The same models on fewer training subjects (or windows per clip): table + figure per metric vs size
	$(RUNNER) datasize --models $(ROBUSTNESS_MODELS) --dataset $(DATASET) --protocol $(PROTOCOL) \
		--seeds $(SEEDS) --sizes $(DATASIZE_SIZES) --output $(DATASIZE_DIR) -- $(ROBUSTNESS_ARGS)

# Sweeps need the W&B server (an agent asks it for every run's values): online, whatever the
# WANDB_MODE default above. The agent starts `python` from PATH, so the venv's comes first.
sweep agent: export WANDB_MODE = online

sweep: $(STAMP) ## Create a W&B sweep and print its ID: make sweep SWEEP=experiments/sweeps/mpcl_lr.yaml
	@test -n "$(SWEEP)" || { echo "usage: make sweep SWEEP=experiments/sweeps/<file>.yaml" >&2; exit 2; }
	$(VENV)/bin/wandb sweep $(SWEEP)

agent: $(STAMP) ## Run a W&B sweep agent: make agent ID=entity/project/sweep_id [COUNT=n]
	@test -n "$(ID)" || { echo "usage: make agent ID=entity/project/<sweep id> [COUNT=n]" >&2; exit 2; }
	PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/wandb agent $(if $(COUNT),--count $(COUNT)) $(ID)

clean: ## Remove runs, caches and generated data (keeps .venv)
	rm -rf runs lightning_logs wandb data/synthetic .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -not -path "./$(VENV)/*" -prune -exec rm -rf {} +

# Protocol inflation: the released HeLo code's evaluation (experiments/protocols/published.yaml on
# random-window) against honest protocols, same models; docs/baselines.md has the measured table.
INFLATION_MODELS ?= mpcl mlp helo
INFLATION_HONEST ?= clip-holdout loso
.PHONY: inflation
inflation: $(STAMP) ## Published vs honest protocols, same models: make inflation ARGS="--data.init_args.num_subjects=4"
	$(PY) -m mpcl.runner.inflation --dataset $(DATASET) --models $(INFLATION_MODELS) \
		--honest $(INFLATION_HONEST) --seeds $(SEEDS) --output runs/inflation/$(DATASET) \
		$(if $(ARGS),-- $(ARGS))
