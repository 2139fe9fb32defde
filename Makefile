# The course's commands. `make book` and `make test` are the README's two commands; both create
# the environment first when it is missing or stale.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Tools the course shells out to (jupyter-book, nbgrader's alembic) come from the venv.
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: env system-deps book test test-fast bench release grade clean

env: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

# Build the website into _build/html (chapters executed, cached in _build/.jupyter_cache).
book: env
	$(PY) book/build.py

# System tools the tests need (bubblewrap for the grading sandbox, chromium for the site's
# browser checks, slurm and munge for the Slurm recipe's test): installed with apt-get when missing; the tests fail, naming the command, without them.
system-deps:
	bash scripts/system-deps.sh

# Every test: library, chapters, exercises, grading, the built site.
test: env system-deps
	$(PY) -m pytest

# The library tests only (seconds).
test-fast: env
	$(PY) -m pytest -m "not slow"

# Time every budget on this machine — each chapter (120 s), each solution notebook (60 s), grading
# (4 core-seconds per notebook: 15 a minute on 1 worker, 30 on 2; at most half stock nbgrader's time),
# the diffusion sampler's overhead (2x), EM against scikit-learn, the flows' log-det and MAF/IAF passes, VAE training throughput, MCMC effective samples per second — and print one table
# (several minutes). Exit 1 when a budget is broken. The tests assert no timing; this does.
bench: env
	$(PY) -m benchmarks

# Regenerate exercises/ from solutions/ (with each notebook's install cell) and notebooks/ from book/
# (instructors; docs/launching.md).
release: env
	$(PY) -m autograder release

# Grade a folder of submissions: make grade DIR=path/to/submissions
grade: env
	$(PY) -m autograder grade $(DIR)

clean:
	rm -rf _build autograder/submitted autograder/autograded autograder/feedback autograder/gradebook autograder/reports
