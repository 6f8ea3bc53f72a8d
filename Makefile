# hcrt: a thin wrapper over meson. `make demo` and `make test` work on a fresh Debian 12 machine: they
# install what is missing, configure, build, and run.
BUILD ?= build
SAN_BUILD ?= build-san
MESON ?= meson
NINJA ?= ninja
JOBS ?= $(shell nproc)

.PHONY: all deps build build-san demo test test-main test-san install clean help

all: build

help:
	@echo "make demo    install what is missing, build, run the training job (4 ranks: sim devices of 3 speeds and a cpu)"
	@echo "make test    install what is missing, build (plain and sanitizer), run every test suite (the cluster"
	@echo "             suite, namespace nodes and a local Slurm, needs root; it runs in the plain build only)"
	@echo "make build   configure and build into $(BUILD)/"
	@echo "make install install into the meson prefix"

deps:
	@sh tools/scripts/install-deps.sh

$(BUILD)/build.ninja:
	$(MESON) setup $(BUILD)

build: deps $(BUILD)/build.ninja
	$(NINJA) -C $(BUILD) -j $(JOBS)

# Address and undefined-behaviour sanitizers over the same suites. The GPU plugins stay out of this
# build: their vendor runtimes are not built with the sanitizer and cannot run here anyway.
$(SAN_BUILD)/build.ninja:
	$(MESON) setup $(SAN_BUILD) -Db_sanitize=address,undefined -Db_lundef=false -Dcuda=disabled \
	    -Dhip=disabled -Dfuzz=disabled

build-san: deps $(SAN_BUILD)/build.ninja
	$(NINJA) -C $(SAN_BUILD) -j $(JOBS)

demo: build
	sh tools/scripts/demo.sh $(BUILD)

test-main: build
	$(MESON) test -C $(BUILD) --num-processes 2 --print-errorlogs

# The sanitizer runs leave out the python suite (the interpreter is not built with the sanitizers), the
# kill-anywhere matrix (suite matrix: the tools' failure paths it drives run under the sanitizers in the
# rest of the fault suite) and the cluster suite (namespace nodes and a Slurm cluster: it runs the same
# tools as the plain build's run).
test-san: build-san
	$(MESON) test -C $(SAN_BUILD) --num-processes 2 --print-errorlogs --no-suite perf --no-suite python \
	    --no-suite matrix --no-suite cluster

# Both runs always happen; the summary counts both; the target fails if any test failed.
test: build build-san
	-@$(MESON) test -C $(BUILD) --num-processes 2 --print-errorlogs
	-@$(MESON) test -C $(SAN_BUILD) --num-processes 2 --print-errorlogs --no-suite perf --no-suite python \
	    --no-suite matrix --no-suite cluster
	@python3 tools/scripts/test-summary.py $(BUILD)/meson-logs/testlog.json $(SAN_BUILD)/meson-logs/testlog.json

install: build
	$(MESON) install -C $(BUILD)

clean:
	rm -rf $(BUILD) $(SAN_BUILD)
