# skelex build. `make` builds ./skelex; `make test` builds and runs the
# sanitized test suite (AddressSanitizer + UndefinedBehaviorSanitizer);
# `make fuzz` builds the libFuzzer harnesses (clang-14) and runs each for
# FUZZ_SECONDS. The DICOM reader is a small C++17 shim over DCMTK
# (src/dicom_shim.cpp), compiled on its own and linked into the C program.
CC      ?= cc
CXX     ?= g++
WARN    := -std=c17 -Wall -Wextra -Werror -D_GNU_SOURCE
CXXWARN := -std=c++17 -Wall -Wextra -Werror -D_GNU_SOURCE
DCMTK   := -ldcmimage -ldcmimgle -ldcmjpeg -lijg8 -lijg12 -lijg16 -ldcmjpls -ldcmtkcharls -ldcmdata -loflog -lofstd
LIBS    := -ldnnl -lcjson -lspng -lpng16 -ljpeg $(DCMTK) -lstdc++ -lm
OPT     := -O3 -march=native -fno-math-errno -fopenmp
SAN     := -O1 -g -march=native -fno-math-errno -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined -fopenmp
# The shim: -O2 for the program; sanitized for the tests (vptr checks off:
# DCMTK's classes come from an uninstrumented library).
SHIMOPT := -O2 -fno-math-errno
SHIMSAN := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize=vptr -fno-sanitize-recover=undefined

SRC     := $(wildcard src/*.c)
HDR     := $(wildcard src/*.h)
CLI     := $(wildcard src/cli/*.c)
TESTSRC := $(wildcard tests/*.c)

# Fuzzing: clang-14 with libFuzzer (scripts/dev-deps.sh installs it). Each
# harness links only the parsers it exercises.
FUZZCC       ?= clang-14
FUZZCXX      ?= clang++-14
FUZZ_SECONDS ?= 60
FUZZFLAGS    := -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -D_GNU_SOURCE
FUZZ_TARGETS := image safetensors config list npy
FUZZ_LIBSRC  := src/common.c src/image.c src/safetensors.c src/config.c src/npy.c src/data.c src/rng.c
FUZZ_BINS    := $(addprefix build/fuzz/fuzz_,$(FUZZ_TARGETS))
FUZZ_OBJS    := $(patsubst src/%.c,build/fuzz/src/%.o,$(FUZZ_LIBSRC))

.PHONY: all test clean fixtures fuzz fuzz-build

all: skelex

build/dicom_shim.o: src/dicom_shim.cpp src/dicom.h src/common.h
	@mkdir -p build
	$(CXX) $(CXXWARN) $(SHIMOPT) -Isrc -c -o $@ $<

build/dicom_shim_san.o: src/dicom_shim.cpp src/dicom.h src/common.h
	@mkdir -p build
	$(CXX) $(CXXWARN) $(SHIMSAN) -Isrc -c -o $@ $<

skelex: $(SRC) $(CLI) $(HDR) $(wildcard src/cli/*.h) build/dicom_shim.o
	$(CC) $(WARN) $(OPT) -Isrc -o $@ $(SRC) $(CLI) build/dicom_shim.o $(LIBS)

build/test_skelex: $(SRC) $(HDR) $(TESTSRC) $(wildcard tests/*.h) build/dicom_shim_san.o
	@mkdir -p build
	$(CC) $(WARN) $(SAN) -Isrc -Itests -o $@ $(SRC) $(TESTSRC) build/dicom_shim_san.o $(LIBS)

# The test binary runs from the repo root so it finds tests/fixtures.
test: build/test_skelex skelex
	ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions=tests/lsan.supp UBSAN_OPTIONS=print_stacktrace=1 \
	  OMP_NUM_THREADS=2 ./build/test_skelex

build/fuzz/dicom_shim.o: src/dicom_shim.cpp src/dicom.h src/common.h
	@mkdir -p build/fuzz
	$(FUZZCXX) $(CXXWARN) $(FUZZFLAGS) -fno-sanitize=vptr -Isrc -c -o $@ $<

build/fuzz/src/%.o: src/%.c $(HDR)
	@mkdir -p build/fuzz/src
	$(FUZZCC) $(WARN) $(FUZZFLAGS) -Isrc -c -o $@ $<

# Linked by clang++ so the sanitizers' C++ runtimes come along for the shim.
build/fuzz/fuzz_%: fuzz/fuzz_%.c fuzz/fuzz_util.h $(FUZZ_OBJS) build/fuzz/dicom_shim.o
	$(FUZZCC) $(WARN) $(FUZZFLAGS) -Isrc -Ifuzz -c -o $@.o $<
	$(FUZZCXX) $(FUZZFLAGS) -o $@ $@.o $(FUZZ_OBJS) build/fuzz/dicom_shim.o \
	  -lcjson -lspng -lpng16 -ljpeg $(DCMTK) -lpthread -lm

fuzz-build: $(FUZZ_BINS)

# Each target in turn, one process, FUZZ_SECONDS each. New inputs go to
# build/fuzz/corpus/NAME; the committed seeds in fuzz/corpus/NAME are read.
fuzz: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p build/fuzz/corpus/$$t build/fuzz/crashes/$$t; \
	  echo "fuzz: $$t for $(FUZZ_SECONDS) s"; \
	  dict=""; [ $$t = image ] && dict=-dict=fuzz/image.dict; \
	  [ $$t = config ] || [ $$t = safetensors ] && dict=-dict=fuzz/json.dict; \
	  ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions=tests/lsan.supp \
	    ./build/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 $$dict \
	    -artifact_prefix=build/fuzz/crashes/$$t/ -print_final_stats=1 \
	    build/fuzz/corpus/$$t fuzz/corpus/$$t || exit 1; \
	done

# Regenerate the PyTorch fixtures (developers only; needs Debian's python3-torch).
fixtures:
	/usr/bin/python3 tools/mae_twin.py fixtures --out tests/fixtures

clean:
	rm -rf build skelex
