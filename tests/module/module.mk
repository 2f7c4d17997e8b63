# tests/module/module.mk - make rules for expertcache.ko and its QEMU test:
# the module for the host kernel (module/), the module for the guest kernel,
# the static guest test programs and the BPF object.  Included by Makefile.

EC_KVER ?= $(shell bash tools/qemu/kver.sh host)
EC_KDIR ?= /lib/modules/$(EC_KVER)/build
EC_GUEST_KVER ?= $(shell bash tools/qemu/kver.sh guest)
MODTEST := build/module-tests
MODTEST_KMOD := $(MODTEST)/kmod-$(EC_GUEST_KVER)
MODULE_SRCS := $(filter-out %.mod.c,$(wildcard module/*.c)) \
	$(wildcard module/*.h module/uapi/*.h) module/Kbuild
MODTEST_SRCS := $(sort $(wildcard tests/module/mod_*.c))
MODTEST_PROGS := $(MODTEST_SRCS:tests/module/%.c=$(MODTEST)/%)
MODTEST_CFLAGS := -D_GNU_SOURCE -O2 -g -std=gnu11 -Wall -Wextra \
	-Wno-unused-parameter -static -pthread -I$(MODTEST) -Ibpf
MODTEST_LIBS := -luring -lbpf -lelf -lz -lpthread
BPFTOOL ?= $(shell command -v bpftool || echo /usr/sbin/bpftool)
BPF_CLANG_FLAGS := -target bpf -O2 -g -Wall \
	-I/usr/include/$(shell $(CC) -dumpmachine) -Ibpf

.PHONY: module install-module test-module module-tests clean-module

module: $(MODULE_SRCS)
	$(Q)test -n "$(EC_KVER)" || { echo "no kernel headers in /lib/modules/*/build" >&2; exit 1; }
	$(MAKE) -C $(EC_KDIR) M=$(CURDIR)/module modules

install-module: module
	$(MAKE) -C $(EC_KDIR) M=$(CURDIR)/module modules_install
	install -D -m 0644 tools/udev/99-expertcache.rules \
		$(DESTDIR)/etc/udev/rules.d/99-expertcache.rules
	getent group expertcache >/dev/null || groupadd --system expertcache
	depmod -a $(EC_KVER)
	@echo "add users to group 'expertcache'; then: modprobe expertcache"

# The guest kernel may differ from the host's: build a copy of the sources.
$(MODTEST_KMOD)/expertcache.ko: $(MODULE_SRCS)
	$(Q)test -n "$(EC_GUEST_KVER)" || { echo "no bootable kernel with headers" >&2; exit 1; }
	$(Q)rm -rf $(MODTEST_KMOD) && mkdir -p $(MODTEST_KMOD)/uapi
	$(Q)cp $(filter-out %.mod.c,$(wildcard module/*.c)) \
		$(wildcard module/*.h) module/Kbuild $(MODTEST_KMOD)/
	$(Q)cp module/uapi/*.h $(MODTEST_KMOD)/uapi/
	$(Q)$(MAKE) -s -C /lib/modules/$(EC_GUEST_KVER)/build \
		M=$(CURDIR)/$(MODTEST_KMOD) modules 2>&1 | \
		grep -v 'Skipping BTF generation' || true
	$(Q)test -f $@

$(MODTEST)/module_tracepoints.bpf.o: bpf/module_tracepoints.bpf.c bpf/module_tracepoints.h
	@mkdir -p $(dir $@)
	@echo "  BPF     $<"
	$(Q)$(CLANG) $(BPF_CLANG_FLAGS) -c $< -o $@

$(MODTEST)/module_tracepoints.skel.h: $(MODTEST)/module_tracepoints.bpf.o
	$(Q)$(BPFTOOL) gen skeleton $< name module_tracepoints >$@

$(MODTEST)/mod_%: tests/module/mod_%.c tests/module/ecm_test.h module/uapi/expertcache.h
	@mkdir -p $(dir $@)
	@echo "  CC      $< (static)"
	$(Q)$(CC) $(MODTEST_CFLAGS) -o $@ $< $(MODTEST_LIBS)

$(MODTEST)/mod_bpf: $(MODTEST)/module_tracepoints.skel.h

# A 16 MiB disk with a known pattern for the O_DIRECT tests.
$(MODTEST)/disk.img: $(MODTEST)/mod_io
	$(Q)$(MODTEST)/mod_io --gen $@ 16

$(MODTEST)/list: tests/module/guest-tests.list
	$(Q)cp $< $@

module-tests: $(MODTEST_KMOD)/expertcache.ko $(MODTEST_PROGS) \
	$(MODTEST)/disk.img $(MODTEST)/list

clean-module:
	$(MAKE) -C $(EC_KDIR) M=$(CURDIR)/module clean
	rm -rf $(MODTEST)

test-module:
	$(Q)bash tests/module/test_module_qemu.sh
