# TensorGuard PKCS#11 — project commands (DESIGN §1).
#
#   make deps          install system packages, Python packages and the pkcs11-check venv (idempotent)
#   make build         release build: .build/release/libtensorguard-pkcs11.so and .build/release/tg-pkcs11
#   make demo          build, then a walk-through with pkcs11-tool on a demo token in out/demo/ (local backend)
#   make demo BACKEND=softhsm   the same with the root key wrapped by a SoftHSM2 KEK (out/demo-softhsm/)
#   make check         every test: swift test (debug) + conformance + the Python package's pytest suite; fails on any failure
#   make test          swift test only
#   make conformance   pkcs11-conformance/run.sh against the built module (MODULE=softhsm|/path to switch)
#   make install PREFIX=/usr/local   module, header, p11-kit module file and tg-pkcs11 (DESTDIR honoured), stripped
#                      as `make deb` strips them (STRIP_MODULE= STRIP_CLI= keep the symbols)
#   make deb           Debian package in out/deb/ (scripts/build-deb.sh): module, p11-kit module file, header, tg-pkcs11
#   make bench         p11bench on SoftHSM2 and on our module, one markdown table; then the Python package vs C and numpy
#   make clean         remove build outputs (.build, out/)

SHELL       := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build

SWIFT       ?= swift
CC          ?= cc
PREFIX      ?= /usr/local
DESTDIR     ?=
MODULE      ?= ours
BACKEND     ?= local
SWIFT_BUILD_FLAGS ?=
SWIFT_TEST_FLAGS  ?=
CONFORMANCE_FLAGS ?=
STRIP_MODULE ?= strip --remove-section=.comment --remove-section=.note --strip-unneeded
STRIP_CLI    ?= strip --remove-section=.comment --remove-section=.note

BUILD_DIR   := .build/release
LIB         := $(BUILD_DIR)/libtensorguard-pkcs11.so
CLI         := $(BUILD_DIR)/tg-pkcs11
HEADER      := Include/tensorguard-pkcs11.h
BENCH_BIN   := out/bench/p11bench
FOOTPRINT_BIN := out/bench/footprint
ABS_PREFIX   = $(abspath $(PREFIX))

.PHONY: deps build demo check test conformance install uninstall deb bench bench-bin clean distclean

deps:
	@scripts/install-deps.sh

build: deps
	@echo "build: swift build -c release"
	@$(SWIFT) build -c release $(SWIFT_BUILD_FLAGS)
	@test -f $(LIB) || { echo "build: $(LIB) was not produced" >&2; exit 1; }

demo: build
	@BACKEND=$(BACKEND) scripts/demo.sh

# Run both halves even when the first fails, so one run shows everything; fail if either failed.
check: build
	@rc=0; \
	 $(MAKE) --no-print-directory test || rc=1; \
	 $(MAKE) --no-print-directory conformance || rc=1; \
	 echo "check: fake cloud servers' contract tests (pytest)"; \
	 out=$$(python3 -m pytest -q -p no:cacheprovider Tests/servers/gcp Tests/servers/azure 2>&1) || rc=1; \
	 printf '%s\n' "$$out" | sed -E 's/^=* ?(([0-9]+ [a-z]+, )*[0-9]+ [a-z]+ in [0-9.]+s.*)$$/pytest: \1/'; \
	 bash Tests/abi/run.sh $(LIB) || rc=1; \
	 bash Tests/reliability/run.sh $(LIB) || rc=1; \
	 bash pkcs11-conformance/attacks/run.sh $(LIB) || rc=1; \
	 bash Tests/package/run.sh $(LIB) $(CLI) || rc=1; \
	 bash Tests/python/run.sh $(abspath $(LIB)) $(abspath $(CLI)) || rc=1; \
	 if [ $$rc != 0 ]; then echo "check: FAILED (see above)"; else echo "check: all passed"; fi; \
	 exit $$rc

# Serial on purpose: 2 cores, PKCS#11 modules hold process-global state, and the serial output is the readable one.
test: deps
	@echo "test: swift test"
	@$(SWIFT) test $(SWIFT_TEST_FLAGS)

conformance: deps
	@test -f $(LIB) || [ "$(MODULE)" != ours ] || $(MAKE) --no-print-directory build
	@pkcs11-conformance/run.sh --module $(MODULE) $(CONFORMANCE_FLAGS)

install:
	@test -f $(LIB) || { echo "install: $(LIB) missing; run 'make build' first" >&2; exit 1; }
	install -d $(DESTDIR)$(ABS_PREFIX)/lib/pkcs11 $(DESTDIR)$(ABS_PREFIX)/include $(DESTDIR)$(ABS_PREFIX)/share/p11-kit/modules
	install -m 0755 $(LIB) $(DESTDIR)$(ABS_PREFIX)/lib/pkcs11/libtensorguard-pkcs11.so
	$(if $(STRIP_MODULE),$(STRIP_MODULE) $(DESTDIR)$(ABS_PREFIX)/lib/pkcs11/libtensorguard-pkcs11.so)
	install -m 0644 $(HEADER) $(DESTDIR)$(ABS_PREFIX)/include/tensorguard-pkcs11.h
	printf '%s\n' '# TensorGuard PKCS#11 (p11-kit module registration)' \
	  'module: $(ABS_PREFIX)/lib/pkcs11/libtensorguard-pkcs11.so' \
	  >$(DESTDIR)$(ABS_PREFIX)/share/p11-kit/modules/tensorguard-pkcs11.module
	chmod 0644 $(DESTDIR)$(ABS_PREFIX)/share/p11-kit/modules/tensorguard-pkcs11.module
	@if [ -f $(CLI) ]; then install -d $(DESTDIR)$(ABS_PREFIX)/bin && install -m 0755 $(CLI) $(DESTDIR)$(ABS_PREFIX)/bin/tg-pkcs11 && \
	  { [ -z "$(STRIP_CLI)" ] || $(STRIP_CLI) $(DESTDIR)$(ABS_PREFIX)/bin/tg-pkcs11; }; fi

uninstall:
	rm -f $(DESTDIR)$(ABS_PREFIX)/lib/pkcs11/libtensorguard-pkcs11.so $(DESTDIR)$(ABS_PREFIX)/include/tensorguard-pkcs11.h \
	      $(DESTDIR)$(ABS_PREFIX)/share/p11-kit/modules/tensorguard-pkcs11.module $(DESTDIR)$(ABS_PREFIX)/bin/tg-pkcs11

# dpkg-deb over the release products; no Swift toolchain needed where it is installed (Tests/package/run.sh).
deb: build
	@scripts/build-deb.sh

bench-bin: $(BENCH_BIN) $(FOOTPRINT_BIN)

$(BENCH_BIN): bench/p11bench.c $(HEADER)
	@mkdir -p $(dir $@)
	$(CC) -O2 -Wall -Wextra -std=c11 -D_GNU_SOURCE -I/usr/include/p11-kit-1/p11-kit -IInclude -o $@ bench/p11bench.c -ldl

$(FOOTPRINT_BIN): bench/footprint.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -Wall -Wextra -std=c11 -D_GNU_SOURCE -I/usr/include/p11-kit-1/p11-kit -o $@ bench/footprint.c -ldl

bench: build $(BENCH_BIN) $(FOOTPRINT_BIN)
	@bench/run.sh
	@python3 bench/python_bench.py --module $(abspath $(LIB)) --p11bench $(abspath $(BENCH_BIN)) --out out/bench/python.md

clean:
	rm -rf .build out

distclean: clean
	rm -rf .venv-check .build-*
