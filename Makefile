# ngx_omni_module build, test, demo and bench entry points.
#
#   make            the module, omnictl and the unit tests
#   make test       everything, then prove -r t/
#   make demo       nginx on 127.0.0.1:8080 with the demo shop
#   make bench      wrk benchmarks (see docs/performance.md)
#   make writer-bench  the writer's records/s outside nginx (bench/writer.sh)

SHELL      := /bin/bash
BUILD      := $(CURDIR)/build
NGX_SRC    ?= /usr/share/nginx/src
NGINX      ?= /usr/sbin/nginx
CORE_DIR   := ngx_omni_module/core

# The one place the version is kept: omnictl --version and the .deb read it.
VERSION    := $(shell cat $(CURDIR)/VERSION)

CC         ?= cc
CFLAGS     ?= -O2 -g
OMNI_CFLAGS = $(CFLAGS) -std=gnu99 -Wall -Wextra -Wno-unused-parameter \
              -Werror -fPIC -I$(CORE_DIR) $(EXTRA_CFLAGS)
OMNI_LIBS   = -llmdb -ljansson -lmaxminddb -lpcre2-8 -lcrypto -lm -lpthread

CORE_SRCS  := $(wildcard $(CORE_DIR)/*.c)
CORE_HDRS  := $(wildcard $(CORE_DIR)/*.h)
CORE_OBJS  := $(patsubst $(CORE_DIR)/%.c,$(BUILD)/core/%.o,$(CORE_SRCS))
CTL_SRCS   := $(wildcard omnictl/*.c)
CTL_HDRS   := $(wildcard omnictl/*.h)
UNIT_SRCS  := $(wildcard t/unit/test_*.c)
UNIT_BINS  := $(patsubst t/unit/%.c,$(BUILD)/unit/%,$(UNIT_SRCS))
MOD_SRCS   := $(wildcard ngx_omni_module/*.c ngx_omni_module/*.h)

MODULE     := $(BUILD)/ngx_http_omni_module.so
OMNICTL    := $(BUILD)/omnictl

.PHONY: all deps module omnictl unit test demo demo-stop bench writer-bench clean

all: module omnictl unit

# Installs system packages only when something is missing (the script asks
# dpkg first and calls apt-get only for what is absent).
deps:
	@./scripts/install-deps.sh --quiet

$(BUILD)/core/%.o: $(CORE_DIR)/%.c $(CORE_HDRS) | deps
	@mkdir -p $(dir $@)
	$(CC) $(OMNI_CFLAGS) -c $< -o $@

$(BUILD)/libomnicore.a: $(CORE_OBJS)
	ar rcs $@ $^

omnictl: $(OMNICTL)
$(OMNICTL): $(CTL_SRCS) $(CTL_HDRS) $(BUILD)/libomnicore.a VERSION
	$(CC) $(OMNI_CFLAGS) -Iomnictl -DOMNICTL_VERSION='"$(VERSION)"' \
	    -o $@ $(CTL_SRCS) \
	    $(BUILD)/libomnicore.a $(OMNI_LIBS)

unit: $(UNIT_BINS)
$(BUILD)/unit/%: t/unit/%.c t/unit/omni_tap.h $(wildcard t/unit/*.h) $(BUILD)/libomnicore.a
	@mkdir -p $(dir $@)
	$(CC) $(OMNI_CFLAGS) -It/unit -o $@ $< $(BUILD)/libomnicore.a \
	    $(OMNI_LIBS)

# The dynamic module, built against the system nginx (GUIDE section 5):
# nginx-dev ships configure, auto/ and headers but no core .c files.
module: $(MODULE)
# Re-configure when config changes or a source file is added or removed
# (the directories' modification times).
$(BUILD)/nginx/objs/Makefile: config $(CORE_DIR) ngx_omni_module | deps
	rm -rf $(BUILD)/nginx && mkdir -p $(BUILD)
	cp -a $(NGX_SRC) $(BUILD)/nginx
	cd $(BUILD)/nginx && . ./conf_flags && \
	    ./configure "$${NGX_CONF_FLAGS[@]}" \
	        --with-cc-opt="-g -O2 -fPIC $(EXTRA_CFLAGS)" \
	        --add-dynamic-module=$(CURDIR) > $(BUILD)/configure.log 2>&1 \
	    || { tail -20 $(BUILD)/configure.log; exit 1; }

$(MODULE): $(BUILD)/nginx/objs/Makefile $(MOD_SRCS) $(CORE_SRCS) $(CORE_HDRS)
	$(MAKE) -C $(BUILD)/nginx -f objs/Makefile modules
	@# Replace by rename: an nginx that has the old .so mapped keeps it.
	cp $(BUILD)/nginx/objs/ngx_http_omni_module.so $@.tmp
	mv -f $@.tmp $@

test: all
	prove -r t/

demo: all
	./scripts/demo.sh start

demo-stop:
	./scripts/demo.sh stop

bench: all
	./bench/run.sh

# The writer's batch loop outside nginx (bench/writer-bench.c), built like
# the unit tests.
writer-bench: $(BUILD)/writer-bench
$(BUILD)/writer-bench: bench/writer-bench.c $(BUILD)/libomnicore.a
	$(CC) $(OMNI_CFLAGS) -o $@ $< $(BUILD)/libomnicore.a $(OMNI_LIBS)

clean:
	rm -rf $(BUILD)
