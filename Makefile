# logkit: build, test, demo and install. `make help` lists the targets.

SWIFT   ?= swift
PREFIX  ?= /usr/local
TOOLS   := logenc logdec
RELEASE := -c release --static-swift-stdlib

DATA     ?= data
REPORTS  ?= reports
SEGMENT  ?= $(DATA)/segment-0001.dat
INDEX    ?= $(DATA)/index.json
FIXTURES ?= fixtures

.PHONY: all build test unit golden demo install clean help

all: build

help:
	@echo "make build     release build (static Swift stdlib), tools linked into bin/"
	@echo "make test      unit tests (Swift Testing) and golden tests (Tests/golden)"
	@echo "make demo      encode, decode and hex-dump the fixture records"
	@echo "make install   copy the tools to PREFIX/bin (PREFIX=$(PREFIX))"
	@echo "make clean     remove build output, bin/, data/ and reports/"

build:
	$(SWIFT) build $(RELEASE)
	@mkdir -p bin
	@dir=$$($(SWIFT) build $(RELEASE) --show-bin-path) && \
	  for t in $(TOOLS); do ln -sf "$$dir/$$t" bin/$$t; done

# Both suites always run; the target fails if either does.
test: build
	@status=0; \
	$(SWIFT) test || status=1; \
	Tests/golden/run.sh || status=1; \
	exit $$status

unit:
	$(SWIFT) test

golden: build
	Tests/golden/run.sh

demo: build
	@mkdir -p $(DATA)
	@echo '$$ bin/logenc < $(FIXTURES)/sample.jsonl > $(DATA)/demo.seg'
	@bin/logenc < $(FIXTURES)/sample.jsonl > $(DATA)/demo.seg
	@echo "wrote $$(wc -c < $(DATA)/demo.seg) bytes"
	@echo
	@echo '$$ bin/logdec < $(DATA)/demo.seg'
	@bin/logdec < $(DATA)/demo.seg
	@echo
	@echo '$$ bin/logdec < $(DATA)/demo.seg | bin/logenc | cmp - $(DATA)/demo.seg'
	@bin/logdec < $(DATA)/demo.seg | bin/logenc | cmp - $(DATA)/demo.seg && echo "round trip: byte for byte identical"
	@echo
	@echo '$$ bin/logenc --timestamp 1700000000000 name ish | xxd'
	@bin/logenc --timestamp 1700000000000 name ish | xxd
	@echo
	@echo '$$ bin/logdec --format'
	@bin/logdec --format

install: build
	install -d $(PREFIX)/bin
	@dir=$$($(SWIFT) build $(RELEASE) --show-bin-path) && \
	  for t in $(TOOLS); do install -m 755 "$$dir/$$t" $(PREFIX)/bin/$$t; done

clean:
	rm -rf .build bin $(DATA) $(REPORTS)
