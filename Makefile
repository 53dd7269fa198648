# ngx_omni_module build, test, demo and bench entry points.
#
#   make            the module, omnictl and the unit tests
#   make test       everything, then prove -r t/
#   make demo       nginx on 127.0.0.1:8080 with the demo shop
#   make bench      wrk benchmarks (see docs/performance.md)
#   make writer-bench  the writer's records/s outside nginx (bench/writer.sh)
#   make install    module, omnictl, man page, docs (DESTDIR, PREFIX, ...)
#   make deb        build/deb/libnginx-mod-http-omni_*.deb and omnictl_*.deb

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
OMNI_LIBS   = -llmdb -ljansson -lmaxminddb -lzstd -lpcre2-8 -lcrypto -lm -lpthread

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

# Installation directories (GNU style; DESTDIR is prepended to each).
# The module goes where the system nginx looks for modules, whatever the
# PREFIX.
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
MANDIR     ?= $(PREFIX)/share/man
DOCDIR     ?= $(PREFIX)/share/doc/libnginx-mod-http-omni
DATADIR    ?= $(PREFIX)/share/libnginx-mod-http-omni
NGX_MODDIR ?= /usr/lib/nginx/modules
INSTALL    ?= install

.PHONY: all deps module omnictl man unit natsping test demo demo-stop \
        bench writer-bench install deb clean

all: module omnictl unit natsping

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

# The man page carries the version of the VERSION file.
man: $(BUILD)/omnictl.1
$(BUILD)/omnictl.1: omnictl/omnictl.1 VERSION
	@mkdir -p $(BUILD)
	sed 's/@VERSION@/$(VERSION)/' $< > $@

unit: $(UNIT_BINS)
$(BUILD)/unit/%: t/unit/%.c t/unit/omni_tap.h $(wildcard t/unit/*.h) $(BUILD)/libomnicore.a
	@mkdir -p $(dir $@)
	$(CC) $(OMNI_CFLAGS) -It/unit -o $@ $< $(BUILD)/libomnicore.a \
	    $(OMNI_LIBS)

# The tests' NATS JetStream client (t/tools/natsping.c, libnats): publish,
# dump a stream, stream info; see t/lib/OmniNats.pm.
natsping: $(BUILD)/natsping
$(BUILD)/natsping: t/tools/natsping.c $(CORE_DIR)/omni_nkey.c \
    $(CORE_DIR)/omni_nkey.h | deps
	@mkdir -p $(BUILD)
	$(CC) $(OMNI_CFLAGS) -o $@ $< $(CORE_DIR)/omni_nkey.c -lnats -lcrypto

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
	        --with-ld-opt="$(EXTRA_LDFLAGS)" \
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

# The marker scan alone (bench/scan-bench.c), built like the unit tests.
scan-bench: $(BUILD)/scan-bench
$(BUILD)/scan-bench: bench/scan-bench.c $(BUILD)/libomnicore.a
	$(CC) $(OMNI_CFLAGS) -o $@ $< $(BUILD)/libomnicore.a $(OMNI_LIBS)

# The writer's batch loop outside nginx (bench/writer-bench.c), built like
# the unit tests.
writer-bench: $(BUILD)/writer-bench
$(BUILD)/writer-bench: bench/writer-bench.c $(BUILD)/libomnicore.a
	$(CC) $(OMNI_CFLAGS) -o $@ $< $(BUILD)/libomnicore.a $(OMNI_LIBS)

# Everything a host needs, under DESTDIR: the module, omnictl and its man
# page, the docs, and the example configuration, page and rules that
# packaging/omni.conf refers to.  Loading the module and the store
# directory are the package's (or the admin's) business: see
# docs/install.md.
install: module omnictl man
	$(INSTALL) -d $(DESTDIR)$(NGX_MODDIR) $(DESTDIR)$(BINDIR) \
	    $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(DOCDIR)/examples \
	    $(DESTDIR)$(DATADIR)/rules $(DESTDIR)$(DATADIR)/html
	$(INSTALL) -m 644 $(MODULE) $(DESTDIR)$(NGX_MODDIR)/
	$(INSTALL) -m 755 $(OMNICTL) $(DESTDIR)$(BINDIR)/
	$(INSTALL) -m 644 $(BUILD)/omnictl.1 $(DESTDIR)$(MANDIR)/man1/
	$(INSTALL) -m 644 README.md docs/*.md $(DESTDIR)$(DOCDIR)/
	$(INSTALL) -m 644 packaging/omni.conf $(DESTDIR)$(DOCDIR)/examples/
	$(INSTALL) -m 644 rules/*.json $(DESTDIR)$(DATADIR)/rules/
	$(INSTALL) -m 644 packaging/html/index.html $(DESTDIR)$(DATADIR)/html/

# The Debian packages, built by dpkg-buildpackage the way Debian builds
# its nginx modules (dh --with nginx: the modules-available snippet, its
# modules-enabled link and Depends: nginx-abi-* from the installed
# nginx-dev).  The build runs in a copy of the tree under build/deb, so
# that its clean steps never touch this tree's build/; the Debian
# version is VERSION plus a revision (debian/changelog is generated).
DEB_REV    ?= 1
DEB_SRC    := $(BUILD)/deb/ngx-omni-module-$(VERSION)

deb:
	@command -v dpkg-buildpackage >/dev/null && command -v dh_nginx \
	    >/dev/null || { echo "make deb needs dpkg-dev, debhelper and" \
	    "nginx-dev (apt-get install dpkg-dev debhelper nginx-dev)"; \
	    exit 1; }
	rm -rf $(BUILD)/deb && mkdir -p $(DEB_SRC)
	tar -c --exclude=./build --exclude=./.git --exclude='./t/servroot*' \
	    . | tar -x -C $(DEB_SRC)
	./packaging/changelog $(VERSION)-$(DEB_REV) > $(DEB_SRC)/debian/changelog
	cd $(DEB_SRC) && dpkg-buildpackage -b -uc -us \
	    > $(BUILD)/deb/build.log 2>&1 \
	    || { tail -40 $(BUILD)/deb/build.log; exit 1; }
	@ls -1 $(BUILD)/deb/*.deb

clean:
	rm -rf $(BUILD)
