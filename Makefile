# Thin wrappers: every target installs what is missing first (scripts/deps), then calls meson,
# ninja or a script. The real logic lives in meson.build, scripts/ and tests/.
BUILD ?= build
CONFIG ?= examples/ai-gateway.yaml

.PHONY: all deps build run run-ha test test-ha bench fuzz clean format

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

# The HA demo: 3 etcd members, 2 servers on them (scripts/run-ha prints how to watch a failover).
run-ha: build
	scripts/run-ha $(BUILD)/src/cli/rekey

# The HA tests alone (tests/ha: real etcd clusters, servers killed; make test runs them too).
test-ha: deps
	test -f build-test/build.ninja || meson setup build-test -Dtest_switches=true >/dev/null
	ninja -C build-test
	REKEY=build-test/src/cli/rekey tests/ha/run.sh

# The whole suite: normal build (unit, integration on both stores, HA), then ASan+UBSan build,
# the store under TSan, fuzz smoke, banned-function check.
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
