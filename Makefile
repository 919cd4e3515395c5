# Thin wrappers: every target installs what is missing first (scripts/deps), then calls meson,
# ninja or a script. The real logic lives in meson.build, scripts/ and tests/.
BUILD ?= build
CONFIG ?= examples/ai-gateway.yaml

.PHONY: all deps build run test bench fuzz clean format

all: build

deps:
	@scripts/deps

$(BUILD)/build.ninja:
	meson setup $(BUILD) -Dtest_switches=false

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

# Starts rekey on its embedded store with the example inventory (see README).
run: build
	scripts/run-example $(BUILD)/src/cli/rekey $(CONFIG)

# The whole suite: normal build, then ASan+UBSan build, the store under TSan, fuzz smoke,
# banned-function check.
test: deps
	scripts/test-all

bench: build
	bench/run-all.sh

fuzz: deps
	fuzz/run.sh $${FUZZ_SECONDS:-300}

format:
	git ls-files '*.c' '*.h' | xargs clang-format -i

clean:
	rm -rf $(BUILD) build-asan build-tsan build-fuzz
