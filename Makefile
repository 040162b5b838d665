# skelex build. `make` builds ./skelex; `make test` builds and runs the
# sanitized test suite (AddressSanitizer + UndefinedBehaviorSanitizer).
CC      ?= cc
WARN    := -std=c17 -Wall -Wextra -Werror -D_GNU_SOURCE
LIBS    := -ldnnl -lcjson -lspng -lpng16 -ljpeg -lm
OPT     := -O3 -march=native -fno-math-errno -fopenmp
SAN     := -O1 -g -march=native -fno-math-errno -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined -fopenmp

SRC     := $(wildcard src/*.c)
HDR     := $(wildcard src/*.h)
CLI     := $(wildcard src/cli/*.c)
TESTSRC := $(wildcard tests/*.c)

.PHONY: all test clean fixtures

all: skelex

skelex: $(SRC) $(CLI) $(HDR)
	$(CC) $(WARN) $(OPT) -Isrc -o $@ $(SRC) $(CLI) $(LIBS)

build/test_skelex: $(SRC) $(HDR) $(TESTSRC) tests/testlib.h
	@mkdir -p build
	$(CC) $(WARN) $(SAN) -Isrc -Itests -o $@ $(SRC) $(TESTSRC) $(LIBS)

# The test binary runs from the repo root so it finds tests/fixtures.
test: build/test_skelex skelex
	ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions=tests/lsan.supp UBSAN_OPTIONS=print_stacktrace=1 \
	  OMP_NUM_THREADS=2 ./build/test_skelex

# Regenerate the PyTorch fixtures (developers only; needs Debian's python3-torch).
fixtures:
	/usr/bin/python3 tools/mae_twin.py fixtures --out tests/fixtures

clean:
	rm -rf build skelex
