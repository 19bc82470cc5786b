# headroom — build, test and run.
#   make            release build: build/release/headroom (BUILD=dir to build elsewhere)
#   make run        set up the machine, build, serve the default model and query it
#   make test       set up the machine, build release, ASan/UBSan and TSan, run every test
#   make asan       sanitizer build: build/asan/headroom
#   make tsan       ThreadSanitizer build: build/tsan/headroom (the unit tests run under it)

CC      ?= gcc
ASSETS  ?= $(if $(HEADROOM_ASSETS),$(HEADROOM_ASSETS),../shared)
MODEL   ?= $(ASSETS)/models/stories260K.gguf

PKGS      := jansson libpcre2-8 libutf8proc libmicrohttpd libcurl
WARN      := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wno-unused-parameter
BASEFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) -Isrc -Iinclude -pthread
PKGCFLAGS  = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKGLIBS    = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
LDLIBS     = $(PKGLIBS) -lm -pthread

# Hot loops start on 64-byte boundaries wherever the linker puts their functions: left to
# chance, one unrelated line elsewhere moved attention's time by a third (the same step
# took 4.9 or 6.5 ms on one thread depending on the alignment of its loops).
RELEASE_FLAGS := -O2 -g -falign-functions=64 -falign-loops=64
ASAN_FLAGS    := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
TSAN_FLAGS    := -O1 -g -fsanitize=thread

LIB_SRC  := $(sort $(filter-out src/cli/%,$(wildcard src/*/*.c)))
CLI_SRC  := $(sort $(wildcard src/cli/*.c))
TEST_SRC := $(sort $(wildcard tests/unit/*.c))

BUILD ?= build
SETUP_STAMP := $(BUILD)/.setup-done

.PHONY: all release asan tsan run test setup clean bench FORCE
all: release

$(SETUP_STAMP): scripts/setup.sh
	@bash scripts/setup.sh
	@mkdir -p $(BUILD) && touch $@

setup: $(SETUP_STAMP)

# One set of rules per build flavour. Its flags are kept in a file that changes only when
# they do, so that changing them rebuilds everything (objects built with different flags
# would be linked together otherwise).
define flavour
$(1)_OBJ      := $$(patsubst %.c,$(BUILD)/$(1)/%.o,$$(LIB_SRC))
$(1)_CLI_OBJ  := $$(patsubst %.c,$(BUILD)/$(1)/%.o,$$(CLI_SRC))
$(1)_TEST_OBJ := $$(patsubst %.c,$(BUILD)/$(1)/%.o,$$(TEST_SRC))

$(BUILD)/$(1)/.flags: FORCE
	@mkdir -p $$(dir $$@)
	@echo '$$(BASEFLAGS) $(2)' | cmp -s - $$@ || echo '$$(BASEFLAGS) $(2)' > $$@

$(BUILD)/$(1)/%.o: %.c $(SETUP_STAMP) $(BUILD)/$(1)/.flags
	@mkdir -p $$(dir $$@)
	@echo "  CC [$(1)] $$<"
	@$$(CC) $$(BASEFLAGS) $$(PKGCFLAGS) $(2) -MMD -MP -c $$< -o $$@

$(BUILD)/$(1)/libheadroom.a: $$($(1)_OBJ)
	@rm -f $$@
	@echo "  AR $$@"
	@ar rcs $$@ $$^

$(BUILD)/$(1)/headroom: $$($(1)_CLI_OBJ) $(BUILD)/$(1)/libheadroom.a
	@echo "  LD $$@"
	@$$(CC) $(2) -o $$@ $$^ $$(LDLIBS)

$(BUILD)/$(1)/test_unit: $$($(1)_TEST_OBJ) $(BUILD)/$(1)/libheadroom.a
	@echo "  LD $$@"
	@$$(CC) $(2) -o $$@ $$^ $$(LDLIBS)

-include $$($(1)_OBJ:.o=.d) $$($(1)_CLI_OBJ:.o=.d) $$($(1)_TEST_OBJ:.o=.d)
endef

$(eval $(call flavour,release,$(RELEASE_FLAGS)))
$(eval $(call flavour,asan,$(ASAN_FLAGS)))
$(eval $(call flavour,tsan,$(TSAN_FLAGS)))

release: $(BUILD)/release/headroom $(BUILD)/release/test_unit
asan: $(BUILD)/asan/headroom $(BUILD)/asan/test_unit
tsan: $(BUILD)/tsan/headroom $(BUILD)/tsan/test_unit

run: release
	@HEADROOM_BIN=$(BUILD)/release/headroom HEADROOM_ASSETS="$(ASSETS)" MODEL="$(MODEL)" bash scripts/demo.sh

test: release asan tsan
	@HEADROOM_ASSETS="$(ASSETS)" BUILD="$(BUILD)" bash tests/run.sh

BENCH_SRC := $(sort $(wildcard bench/*.c))
BENCH_BIN := $(patsubst bench/%.c,$(BUILD)/release/bench/%,$(BENCH_SRC))

$(BUILD)/release/bench/%: bench/%.c $(BUILD)/release/libheadroom.a $(BUILD)/release/.flags
	@mkdir -p $(dir $@)
	@echo "  LD $@"
	@$(CC) $(BASEFLAGS) $(PKGCFLAGS) $(RELEASE_FLAGS) -o $@ $< $(BUILD)/release/libheadroom.a $(LDLIBS)

bench: $(BENCH_BIN)

clean:
	rm -rf $(BUILD)/release $(BUILD)/asan $(BUILD)/tsan
