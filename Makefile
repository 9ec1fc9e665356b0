# logkit: build, test, demo and install. `make help` lists the targets.

# bash with pipefail: a pipeline fails if any stage does (a damaged scan must
# not quietly produce a partial index).
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c

SWIFT   ?= swift
PREFIX  ?= /usr/local
TOOLS   := logenc logdec logscan logidx logfix logpack logsync
# Fully static executables: no dynamic loader work at start, so a tool runs in
# about a millisecond, like the C tools it is compared with. Generic types'
# metadata through direct accessors, not by demangling their names at run
# time: each first use of, say, a dictionary type would otherwise scan the
# binary's conformance records (a tenth of a millisecond per `logidx get`).
RELEASE := -c release -Xswiftc -static-executable -Xswiftc -Xfrontend -Xswiftc -disable-concrete-type-metadata-mangled-name-accessors

# DATA is a store: a directory of segments, rolled over at SEGMENT_SIZE.
DATA         ?= data
REPORTS      ?= reports
SEGMENT_SIZE ?= 64M
MIN_GARBAGE  ?= 0
SEGMENT      ?= $(DATA)/segment-0001.dat
INDEX        := $(DATA)/index.json
# Single segments of the demo and the README's examples: beside the store,
# never in it (a store holds only its own files).
DEMO         ?= demo
FIXTURES ?= fixtures
SIZES    ?= 10000,100000,1000000

.PHONY: all build deps optional-deps test bench-logsync unit golden demo install clean help put delete scan inspect index get recover compact crash-demo bench bench-quick torture follow fuzz fuzz-quick

# KEY, VALUE and OFFSET reach the recipes through the environment, unexpanded,
# so keys with spaces, quotes or dollar signs pass through make and the shell
# unchanged.
# Each is exported only when given, so recipes (and tests run by make test)
# never see an empty one that nobody set.
VALUE_GIVEN := $(if $(filter undefined,$(origin VALUE)),,yes)
define pass_through
ifneq ($$(origin $(1)),undefined)
override $(1) := $$(value $(1))
export $(1)
endif
endef
$(foreach v,KEY VALUE OFFSET,$(eval $(call pass_through,$(v))))
SOURCES := Package.swift $(shell find Sources -name '*.swift' -o -name '*.[ch]' -o -name module.modulemap)

all: build

help:
	@echo "make build     release build (static executables), tools linked into bin/"
	@echo "make test      unit tests (Swift Testing) and golden tests (Tests/golden)"
	@echo "make demo      encode, decode and hex-dump the fixture records"
	@echo "make put KEY=k VALUE=v   append a PUT to the store DATA=$(DATA) (SEGMENT_SIZE=$(SEGMENT_SIZE))"
	@echo "make delete KEY=k        append a DELETE (tombstone) to DATA"
	@echo "make scan                print every record of DATA as JSON lines"
	@echo "make inspect OFFSET=n    print the record at address n of SEGMENT=$(SEGMENT)"
	@echo "make index               bring DATA's index ($(INDEX)) up to date"
	@echo "make get KEY=k           read a key's newest value through the index"
	@echo "make recover             logfix DATA (the active segment's torn tail), then the index"
	@echo "make compact             logpack DATA (merge closed segments; MIN_GARBAGE=$(MIN_GARBAGE)), then the index"
	@echo "make crash-demo          append, cut the tail mid-record, recover, show the report"
	@echo "make fuzz                each fuzz target for FUZZ_SECONDS=$(FUZZ_SECONDS) s (make fuzz-quick: a short run)"
	@echo "make torture             200 rounds each of kill -9 of writers (also of atomic batches), compactions, store merges and followers (TORTURE_ROUNDS), then 30 of logsync's pipeline and nats-server (LOGSYNC_ROUNDS)"
	@echo "make bench-logsync       logsync push and pull throughput beside nats-py, and the 100,000-record round trip"
	@echo "make bench               logkit beside its peers at SIZES=$(SIZES); reports in REPORTS"
	@echo "make bench-quick         a smoke run of the benchmark, under a minute"
	@echo "make follow              print DATA's records as they are committed (tail -f)"
	@echo "make install   the tools, man pages and bash/zsh completions under PREFIX=$(PREFIX) (DESTDIR, BIN)"
	@echo "make uninstall remove exactly what make install put there"
	@echo "make clean     remove build output, bin/, DATA, the crash demo's store, DEMO and REPORTS"

build:
	$(SWIFT) build $(RELEASE)
	@mkdir -p bin
	@dir=$$($(SWIFT) build $(RELEASE) --show-bin-path) && \
	  for t in $(TOOLS) logbench; do ln -sf "$$dir/$$t" bin/$$t; done
	@touch bin/.built

# Both suites always run; the target fails if either does.
# What the tests and the demo run besides the tools: command, then the Debian
# package that has it. Run as root (as CI is), make installs what is missing;
# otherwise it says what to install and stops.
DEPS := xxd:xxd jq:jq python3:python3 strace:strace groff:groff-base man:man-db zsh:zsh script:bsdutils
deps:
	@missing=""; for d in $(DEPS); do command -v "$${d%%:*}" > /dev/null || missing="$$missing $${d#*:}"; done; \
	[ -z "$$missing" ] && exit 0; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get > /dev/null; then \
	  echo "make: installing$$missing"; apt-get update -qq && apt-get install -y -qq $$missing; \
	else \
	  echo "make: missing$$missing; install with: sudo apt-get install$$missing" >&2; exit 2; \
	fi
	@$(MAKE) -s optional-deps

# The logsync tests need a NATS server, and check that another client (the
# Python nats-py package) reads what logsync wrote. Without them those tests
# are reported as skipped, by name; as root, make installs them.
OPTIONAL_DEPS := nats-server:nats-server
optional-deps:
	@missing=""; for d in $(OPTIONAL_DEPS); do command -v "$${d%%:*}" > /dev/null || missing="$$missing $${d#*:}"; done; \
	if [ -n "$$missing" ] && [ "$$(id -u)" = 0 ] && command -v apt-get > /dev/null; then \
	  echo "make: installing$$missing"; apt-get update -qq && apt-get install -y -qq $$missing || true; \
	elif [ -n "$$missing" ]; then \
	  echo "make: missing$$missing (the logsync tests will be skipped; install with: sudo apt-get install$$missing)" >&2; \
	fi; \
	python3 -c 'import nats' 2> /dev/null || { [ "$$(id -u)" = 0 ] && echo "make: installing nats-py" && python3 -m pip install -q nats-py; } || \
	  echo "make: the Python package nats-py is missing (the tests reading back with it will be skipped; install with: pip install nats-py)" >&2

# Every suite always runs; the target fails if any does. The unit tests are
# Swift Testing only (--disable-xctest: no empty XCTest run to report); the
# fuzz targets run briefly from their seed corpus (make fuzz runs them long).
test: deps build
	@status=0; \
	$(SWIFT) test --disable-xctest || status=1; \
	Fuzz/run.sh --runs $(FUZZ_QUICK_RUNS) || status=1; \
	Tests/golden/run.sh || status=1; \
	exit $$status

# Coverage-guided fuzzing (libFuzzer, swiftc -sanitize=fuzzer) of the record
# walker, the JSON line parser, the index line parser and recovery, each
# checked against a simple model; Fuzz/README.md says what each checks.
FUZZ_SECONDS    ?= 120
FUZZ_QUICK_RUNS ?= 2000
fuzz:
	Fuzz/run.sh --seconds $(FUZZ_SECONDS)

fuzz-quick:
	Fuzz/run.sh --runs $(FUZZ_QUICK_RUNS)

unit:
	$(SWIFT) test --disable-xctest

golden: build
	Tests/golden/run.sh

demo: deps build
	@mkdir -p $(DEMO)
	@echo '$$ bin/logenc < $(FIXTURES)/sample.jsonl > $(DEMO)/demo.seg'
	@bin/logenc < $(FIXTURES)/sample.jsonl > $(DEMO)/demo.seg
	@echo "wrote $$(wc -c < $(DEMO)/demo.seg) bytes"
	@echo
	@echo '$$ bin/logdec < $(DEMO)/demo.seg'
	@bin/logdec < $(DEMO)/demo.seg
	@echo
	@echo '$$ bin/logdec < $(DEMO)/demo.seg | bin/logenc | cmp - $(DEMO)/demo.seg'
	@bin/logdec < $(DEMO)/demo.seg | bin/logenc | cmp - $(DEMO)/demo.seg && echo "round trip: byte for byte identical"
	@echo
	@echo '$$ bin/logenc --timestamp 1700000000000 name ish | xxd'
	@bin/logenc --timestamp 1700000000000 name ish | xxd
	@echo
	@echo '$$ bin/logdec --format'
	@bin/logdec --format

# The data targets rebuild the tools only when a source changed.
bin/.built: $(SOURCES)
	@$(MAKE) --no-print-directory build

put: bin/.built
	@test -n "$$KEY" -a -n "$(VALUE_GIVEN)" || { echo "usage: make put KEY=key VALUE=value" >&2; exit 2; }
	bin/logenc -a $(DATA)/ --segment-size $(SEGMENT_SIZE) -- "$$KEY" "$$VALUE"

delete: bin/.built
	@test -n "$$KEY" || { echo "usage: make delete KEY=key" >&2; exit 2; }
	bin/logenc -a $(DATA)/ --segment-size $(SEGMENT_SIZE) -d "$$KEY"

scan: bin/.built
	bin/logscan $(DATA)

follow: bin/.built
	bin/logscan --follow $(DATA)

inspect: bin/.built
	@test -n "$$OFFSET" || { echo "usage: make inspect OFFSET=n" >&2; exit 2; }
	bin/logscan --at "$$OFFSET" $(SEGMENT)

# logidx reads only the records its index does not cover yet; if one is
# damaged, the old index stays.
index: bin/.built
	bin/logidx -o $(INDEX) $(DATA)

get: bin/.built
	@test -n "$$KEY" || { echo "usage: make get KEY=key" >&2; exit 2; }
	bin/logidx get $(DATA) "$$KEY"

# For cron, e.g.  0 3 * * *  cd /srv/logkit && make -s recover compact
# Each writes its JSON report to stdout and to REPORTS; a non-zero exit means
# damage was found and refused (see the report), or an environment error.
recover: bin/.built
	@mkdir -p $(REPORTS)
	bin/logfix --report $(REPORTS)/recover.json $(DATA)
	bin/logidx -o $(INDEX) $(DATA)

compact: bin/.built
	@mkdir -p $(REPORTS)
	bin/logpack --min-garbage $(MIN_GARBAGE) --report $(REPORTS)/compact.json $(DATA)
	bin/logidx -o $(INDEX) $(DATA)

# A store of its own beside DATA (a store holds nothing but its own files).
CRASH_DEMO := $(DATA)-crash-demo
crash-demo: bin/.built
	@rm -rf $(CRASH_DEMO)
	@echo '$$ bin/logenc -a $(CRASH_DEMO)/ --sync each < $(FIXTURES)/sample.jsonl > /dev/null'
	@bin/logenc -a $(CRASH_DEMO)/ --sync each < $(FIXTURES)/sample.jsonl > /dev/null
	@echo "wrote $$(wc -c < $(CRASH_DEMO)/segment-0001.dat) bytes"
	@echo
	@echo '# a crash mid-append: the last record loses its last 20 bytes'
	@echo '$$ truncate -s -20 $(CRASH_DEMO)/segment-0001.dat'
	@truncate -s -20 $(CRASH_DEMO)/segment-0001.dat
	@echo
	@echo '$$ bin/logscan --count $(CRASH_DEMO)'
	@bin/logscan --count $(CRASH_DEMO) || true
	@echo
	@echo '$$ bin/logfix $(CRASH_DEMO)'
	@bin/logfix $(CRASH_DEMO)
	@echo
	@echo '$$ bin/logscan --count $(CRASH_DEMO)'
	@bin/logscan --count $(CRASH_DEMO)

# Writers and compactions killed with kill -9 at random moments, no logfix in
# between: every acknowledged record must stay readable (a few minutes).
TORTURE_ROUNDS ?= 200
LOGSYNC_ROUNDS ?= 30
torture: bin/.built
	python3 Tests/torture/kill9_loop.py --rounds $(TORTURE_ROUNDS) --bin bin
	python3 Tests/torture/batch_kill9.py --rounds $(TORTURE_ROUNDS) --bin bin
	python3 Tests/torture/store_kill9.py --rounds $(TORTURE_ROUNDS) --bin bin
	python3 Tests/torture/follow_kill9.py --rounds $(TORTURE_ROUNDS) --bin bin
	python3 Tests/torture/logsync_kill9.py --rounds $(LOGSYNC_ROUNDS) --bin bin

# logsync against a local nats-server: push and pull throughput beside nats-py,
# and the 100,000-record round trip.
bench-logsync: bin/.built
	python3 Tests/bench/logsync_bench.py --bin bin
	python3 Tests/bench/logsync_roundtrip.py --bin bin

# Peers are measured only if installed: apt-get install sqlite3 jq tkrzw-utils lmdb-utils
bench: bin/.built
	bin/logbench --sizes $(SIZES) --work $(DATA)/bench --reports $(REPORTS)

bench-quick: bin/.built
	bin/logbench --sizes 10000 --runs 3 --work $(DATA)/bench --reports $(REPORTS)

# make install: the tools to $(DESTDIR)$(PREFIX)/bin, their man pages (and
# logkit-format(5), logkit-store(5)) to share/man/man1 and man5, bash and zsh
# completions to share/bash-completion/completions/TOOL and
# share/zsh/site-functions/_TOOL; install-bin, install-man and
# install-completions do one part each. The pages and completions are
# generated by the tools being installed (TOOL --man, TOOL --completion SHELL,
# logdec --man-format). It builds first, unless BIN names a directory of tools
# already built, which are then used as they are (no Swift build):
#   make install BIN=.build/release PREFIX=$$HOME/.local
# make uninstall removes exactly the files install puts there.
DESTDIR ?=
BIN     ?=
BINDIR   = $(DESTDIR)$(PREFIX)/bin
MAN1DIR  = $(DESTDIR)$(PREFIX)/share/man/man1
MAN5DIR  = $(DESTDIR)$(PREFIX)/share/man/man5
BASHDIR  = $(DESTDIR)$(PREFIX)/share/bash-completion/completions
ZSHDIR   = $(DESTDIR)$(PREFIX)/share/zsh/site-functions
INSTALLED = $(foreach t,$(TOOLS),'$(BINDIR)/$(t)' '$(MAN1DIR)/$(t).1' '$(BASHDIR)/$(t)' '$(ZSHDIR)/_$(t)') \
	'$(MAN5DIR)/logkit-format.5' '$(MAN5DIR)/logkit-store.5'
# Shell code that sets $$bin to the directory of the built tools, and a
# temporary directory $$gen, removed on exit.
FIND_TOOLS = set -e; \
	bin='$(BIN)'; [ -n "$$bin" ] || bin=$$($(SWIFT) build $(RELEASE) --show-bin-path); \
	for t in $(TOOLS); do \
	  [ -x "$$bin/$$t" ] || { echo "make install: $$bin/$$t is not built (make build, or BIN=DIR)" >&2; exit 2; }; \
	done; \
	gen=$$(mktemp -d); trap 'rm -rf "$$gen"' EXIT

.PHONY: install-bin install-man install-completions uninstall

install: install-bin install-man install-completions

install-bin: $(if $(BIN),,build)
	@$(FIND_TOOLS); \
	install -d '$(BINDIR)'; \
	for t in $(TOOLS); do install -m 755 "$$bin/$$t" '$(BINDIR)'/$$t; done; \
	echo "installed $(TOOLS) in $(DESTDIR)$(PREFIX)/bin"

install-man: $(if $(BIN),,build)
	@$(FIND_TOOLS); \
	for t in $(TOOLS); do "$$bin/$$t" --man > "$$gen/$$t.1"; done; \
	"$$bin/logdec" --man-format > "$$gen/logkit-format.5"; \
	install -d '$(MAN1DIR)' '$(MAN5DIR)'; \
	for t in $(TOOLS); do install -m 644 "$$gen/$$t.1" '$(MAN1DIR)'; done; \
	install -m 644 "$$gen/logkit-format.5" docs/man/logkit-store.5 '$(MAN5DIR)'; \
	echo "installed their man pages in $(DESTDIR)$(PREFIX)/share/man"

install-completions: $(if $(BIN),,build)
	@$(FIND_TOOLS); \
	for t in $(TOOLS); do \
	  "$$bin/$$t" --completion bash > "$$gen/$$t"; \
	  "$$bin/$$t" --completion zsh > "$$gen/_$$t"; \
	done; \
	install -d '$(BASHDIR)' '$(ZSHDIR)'; \
	for t in $(TOOLS); do install -m 644 "$$gen/$$t" '$(BASHDIR)'; install -m 644 "$$gen/_$$t" '$(ZSHDIR)'; done; \
	echo "installed their bash and zsh completions in $(DESTDIR)$(PREFIX)/share"

uninstall:
	rm -f $(INSTALLED)

clean:
	rm -rf .build bin $(DATA) $(DATA)-crash-demo $(DEMO) $(REPORTS)
