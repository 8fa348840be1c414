# Plain C build of the core (the Python package builds the same sources via cffi).
#   make            -> build/librtransport.so (-> librtransport.so.0.N) and build/librtransport.a
#                      (BUILD=DIR puts them, and the objects, in DIR instead)
#   make test       -> pip install the test extra and run the suite (README's command)
#   make sanitize   -> rebuild under ASan+UBSan and run the suite with it
#   make fuzz       -> run the packet-decoder fuzzer for FUZZ_SECONDS (default 60)
CC ?= gcc
CFLAGS ?= -O2 -g
WARN = -Wall -Wextra -Wshadow -Wno-unused-parameter
RT_CFLAGS = -std=gnu11 -D_GNU_SOURCE -fPIC -fvisibility=hidden -Icsrc/include -Icsrc $(WARN)
BUILD ?= build
SRCS = $(sort $(wildcard csrc/*.c))
OBJS = $(patsubst csrc/%.c,$(BUILD)/obj/%.o,$(SRCS))
FUZZ_SECONDS ?= 60

all: $(BUILD)/librtransport.so $(BUILD)/librtransport.a

$(BUILD)/obj/%.o: csrc/%.c $(wildcard csrc/*.h) csrc/include/rtransport/rt.h
	@mkdir -p $(BUILD)/obj
	$(CC) $(RT_CFLAGS) $(CFLAGS) -c $< -o $@

# soname: librtransport.so.0.MINOR while the major version is 0 (a minor
# version may change the ABI then), librtransport.so.MAJOR from 1.0 on
RT_MAJOR := $(shell sed -n 's/^\#define RT_VERSION_MAJOR //p' csrc/include/rtransport/rt.h)
RT_MINOR := $(shell sed -n 's/^\#define RT_VERSION_MINOR //p' csrc/include/rtransport/rt.h)
SONAME = librtransport.so.$(RT_MAJOR)$(if $(filter 0,$(RT_MAJOR)),.$(RT_MINOR))

$(BUILD)/$(SONAME): $(OBJS)
	$(CC) -shared -Wl,-soname,$(SONAME) -o $@ $(OBJS) -lpthread -lm

$(BUILD)/librtransport.so: $(BUILD)/$(SONAME)
	ln -sf $(SONAME) $@

$(BUILD)/librtransport.a: $(OBJS)
	ar rcs $@ $(OBJS)

test:
	python3 -m pip install -q '.[test]' && pytest -q tests

# Builds a sanitized copy of the extension beside the tree (site-packages and
# the source tree stay untouched) and runs the suite against it.
SAN_DIR = build/sanitize
sanitize:
	rm -rf $(SAN_DIR) && mkdir -p $(SAN_DIR)/pkg/rtransport && \
	cp rtransport/*.py rtransport/_cdef.h $(SAN_DIR)/pkg/rtransport/ && \
	RT_SANITIZE=1 python3 -c "import sys; sys.path.insert(0, 'rtransport'); import _build; \
	_build._make_builder(absolute=True).compile(tmpdir='$(SAN_DIR)/cffi')" > $(SAN_DIR)/build.log 2>&1 && \
	cp $(SAN_DIR)/cffi/rtransport/_rt*.so $(SAN_DIR)/pkg/rtransport/ && \
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	LD_PRELOAD="$$($(CC) -print-file-name=libasan.so) $$($(CC) -print-file-name=libubsan.so)" \
	PYTHONSAFEPATH=1 PYTHONPATH=$(CURDIR)/$(SAN_DIR)/pkg \
	python3 -m pytest -q -x -p no:cacheprovider tests

fuzz:
	python3 tests/fuzz_decoder.py -max_total_time=$(FUZZ_SECONDS)

clean:
	rm -rf build

.PHONY: all test sanitize fuzz clean
