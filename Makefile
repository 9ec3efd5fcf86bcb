# mmmt developer entry points. `make test` is what CI runs (via .ci/run).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: venv test demo clean-venv

$(VENV)/.installed: requirements/ci.txt setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet -r requirements/ci.txt
	$(PY) -m pip install --quiet --no-build-isolation --no-deps -e .
	touch $@

venv: $(VENV)/.installed

test: venv
	$(PY) -m pytest tests $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)

# ---------------------------------------------------------------------------------------------
# CPU demo: synthetic NYUD-layout data -> train a small MTMamba -> evaluate -> visualizations.
DEMO_CONFIG := configs/demo/mtmamba-tiny_synthetic-nyud.py
DEMO_DATA := data/synthetic_nyud
DEMO_WORK := work_dirs/demo
DEMO_ITERS ?= 600

demo: venv
	@# an earlier demo's checkpoints and pictures are never replaced without being asked
	@if ls $(DEMO_WORK)/iter_*.pth >/dev/null 2>&1 || [ -e $(DEMO_WORK)/last_checkpoint ]; then \
		echo "$(DEMO_WORK) holds an earlier demo run; delete it (rm -r $(DEMO_WORK)) or run" \
			"make demo DEMO_WORK=work_dirs/demo2"; \
		exit 2; \
	fi
	@if [ -e $(DEMO_DATA) ]; then \
		echo "Using the existing $(DEMO_DATA) (delete it to regenerate)"; \
	else \
		$(PY) tools/dataset_converters/synthetic_mt.py nyud $(DEMO_DATA) \
			--train 200 --val 24 --seed 0 --size 128 160; \
	fi
	@# no validation at the end of training: tools/test.py evaluates the same 24 images once
	@# the lr schedule and the checkpoint follow DEMO_ITERS (the config's 600 are read-time values)
	$(PY) tools/train.py $(DEMO_CONFIG) --work-dir $(DEMO_WORK) --data-root $(DEMO_DATA) \
		--cfg-options train_cfg.max_iters=$(DEMO_ITERS) \
		param_scheduler.0.end=$$(( $(DEMO_ITERS) + 1 )) \
		default_hooks.checkpoint.interval=$(DEMO_ITERS) \
		val_cfg=None val_dataloader=None val_evaluator=None
	$(PY) tools/test.py $(DEMO_CONFIG) $(DEMO_WORK)/iter_$(DEMO_ITERS).pth \
		--work-dir $(DEMO_WORK) --data-root $(DEMO_DATA) --show-dir vis
	@echo ""
	@echo "Demo finished."
	@echo "  checkpoint:     $(DEMO_WORK)/iter_$(DEMO_ITERS).pth"
	@echo "  test metrics:   $(DEMO_WORK)/<timestamp>/<timestamp>.json (the newer timestamp)"
	@echo "  training log:   $(DEMO_WORK)/<timestamp>/vis_data/scalars.json (the older one)"
	@echo "  pictures:       $(DEMO_WORK)/vis/vis_data/vis_image/"
