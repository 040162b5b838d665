# skelex build.
#   make          ./skelex (the command-line program)
#   make lib      build/libskelex.a (the library behind include/skelex.h)
#   make example  build/api_errormap, compiled against include/skelex.h and
#                 libskelex.a only
#   make test     the sanitized test suite (AddressSanitizer + UBSan)
#   make fuzz     the libFuzzer harnesses (clang-14), FUZZ_SECONDS each
#   make cuda     ./skelex with the CUDA backend (src/cuda/, needs nvcc)
#   make cuda-test  build/test_cuda: each CUDA layer against its CPU twin
# Sources live in src/<part>/ (core, nn, io, data, train, adapt, eval,
# zeroshot, api, cli); every object is built on its own with its header
# dependencies tracked (-MMD), so an edit rebuilds only what it touches.
# The DICOM reader is a small C++17 shim over DCMTK (src/io/dicom_shim.cpp).
CC      ?= cc
CXX     ?= g++
WARN    := -std=c17 -Wall -Wextra -Werror -D_GNU_SOURCE
CXXWARN := -std=c++17 -Wall -Wextra -Werror -D_GNU_SOURCE
DCMTK   := -ldcmimage -ldcmimgle -ldcmjpeg -lijg8 -lijg12 -lijg16 -ldcmjpls -ldcmtkcharls -ldcmdata -loflog -lofstd
LIBS    := -ldnnl -lcjson -lspng -lpng16 -ljpeg -lmicrohttpd $(DCMTK) -lstdc++ -lpthread -lm
OPT     := -O3 -march=native -fno-math-errno -fopenmp
SAN     := -O1 -g -march=native -fno-math-errno -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined -fopenmp
# The shim: -O2 for the program; sanitized for the tests (vptr checks off:
# DCMTK's classes come from an uninstrumented library).
SHIMOPT := -O2 -fno-math-errno
SHIMSAN := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize=vptr -fno-sanitize-recover=undefined
INC     := -Isrc -Iinclude
# MPI (data-parallel pretraining, src/dist/): on when mpicc answers (Debian's
# libopenmpi-dev); `make MPI=0` builds without it. Only src/dist/ includes mpi.h.
MPI     ?= $(if $(shell mpicc --showme:compile 2>/dev/null),1,0)
ifeq ($(MPI),1)
MPICFLAGS := -DHAVE_MPI $(shell mpicc --showme:compile)
LIBS      += $(shell mpicc --showme:link)
endif

LIBSRC  := $(sort $(shell find src -name '*.c' -not -path 'src/cli/*'))
CLISRC  := $(sort $(wildcard src/cli/*.c))
TESTSRC := $(sort $(shell find tests -name '*.c'))
SHIM    := src/io/dicom_shim.cpp

OPTOBJ  := $(patsubst src/%.c,build/opt/%.o,$(LIBSRC))
SANOBJ  := $(patsubst src/%.c,build/san/%.o,$(LIBSRC))
CLIOBJ  := $(patsubst src/%.c,build/opt/%.o,$(CLISRC))
TESTOBJ := $(patsubst tests/%.c,build/san/tests/%.o,$(TESTSRC))
# The web page (src/serve/web/) compiled into the program as a C file.
ASSETS  := $(sort $(wildcard src/serve/web/*.html src/serve/web/*.css src/serve/web/*.js))
OPTOBJ  += build/opt/gen/serve_assets.o
SANOBJ  += build/san/gen/serve_assets.o

# Fuzzing: clang-14 with libFuzzer (scripts/dev-deps.sh installs it). Each
# harness links only the parsers it exercises.
FUZZCC       ?= clang-14
FUZZCXX      ?= clang++-14
FUZZ_SECONDS ?= 60
FUZZFLAGS    := -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -D_GNU_SOURCE
FUZZ_TARGETS := image safetensors config list npy csv runstate http
FUZZ_LIBSRC  := src/core/common.c src/core/json.c src/train/runstate.c src/io/image.c src/io/safetensors.c src/nn/config.c \
                src/io/npy.c src/data/data.c src/core/rng.c src/serve/multipart.c src/serve/request.c
FUZZ_BINS    := $(addprefix build/fuzz/fuzz_,$(FUZZ_TARGETS))
FUZZ_OBJS    := $(patsubst src/%.c,build/fuzz/%.o,$(FUZZ_LIBSRC))

.PHONY: all lib example print-libs test test-browser clean fixtures fuzz fuzz-build

all: skelex

build/opt/dist/%.o build/san/dist/%.o: WARN += $(MPICFLAGS)

build/opt/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(OPT) $(INC) -MMD -MP -c -o $@ $<

build/san/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(SAN) $(INC) -MMD -MP -c -o $@ $<

build/san/tests/%.o: tests/%.c
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(SAN) $(INC) -Itests -MMD -MP -c -o $@ $<

build/gen/serve_assets.c: $(ASSETS) src/serve/embed_assets.sh
	@mkdir -p $(dir $@)
	sh src/serve/embed_assets.sh $@ $(ASSETS)

build/opt/gen/serve_assets.o: build/gen/serve_assets.c
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(OPT) $(INC) -c -o $@ $<

build/san/gen/serve_assets.o: build/gen/serve_assets.c
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(SAN) $(INC) -c -o $@ $<

build/opt/dicom_shim.o: $(SHIM)
	@mkdir -p $(dir $@)
	$(CXX) $(CXXWARN) $(SHIMOPT) $(INC) -MMD -MP -c -o $@ $<

build/san/dicom_shim.o: $(SHIM)
	@mkdir -p $(dir $@)
	$(CXX) $(CXXWARN) $(SHIMSAN) $(INC) -MMD -MP -c -o $@ $<

build/libskelex.a: $(OPTOBJ) build/opt/dicom_shim.o
	rm -f $@
	ar rcs $@ $^

lib: build/libskelex.a

# The system libraries a program linked against libskelex.a needs.
print-libs:
	@echo $(LIBS) -fopenmp

# The example sees the public header only (-Iinclude, never -Isrc).
build/api_errormap: examples/api_errormap.c include/skelex.h build/libskelex.a
	$(CC) $(WARN) -O2 -Iinclude -o $@ examples/api_errormap.c build/libskelex.a $(LIBS) -fopenmp

example: build/api_errormap

skelex: $(CLIOBJ) build/libskelex.a
	$(CC) $(OPT) -o $@ $(CLIOBJ) build/libskelex.a $(LIBS)

build/test_skelex: $(SANOBJ) $(TESTOBJ) build/san/dicom_shim.o
	$(CC) $(SAN) -o $@ $^ $(LIBS)

# The test binary runs from the repo root so it finds tests/fixtures.
# tests/run_all.sh runs the C suite, then the browser test, and closes with
# one line over both: "total: N passed, N failed, N skipped".
test: build/test_skelex skelex example
	@bash tests/run_all.sh

# The page in Debian's chromium via playwright-core (tests/browser); prints
# its own PASS/SKIP/FAIL line and skips when chromium or node_modules are absent.
test-browser: skelex
	@if command -v node >/dev/null 2>&1; then node tests/browser/page.test.mjs; \
	 else echo "browser test: SKIP (node not installed; scripts/deps.sh installs nodejs)"; fi

build/fuzz/dicom_shim.o: $(SHIM)
	@mkdir -p build/fuzz
	$(FUZZCXX) $(CXXWARN) $(FUZZFLAGS) -fno-sanitize=vptr $(INC) -c -o $@ $<

build/fuzz/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(FUZZCC) $(WARN) $(FUZZFLAGS) $(INC) -MMD -MP -c -o $@ $<

# Linked by clang++ so the sanitizers' C++ runtimes come along for the shim.
build/fuzz/fuzz_%: fuzz/fuzz_%.c fuzz/fuzz_util.h $(FUZZ_OBJS) build/fuzz/dicom_shim.o
	$(FUZZCC) $(WARN) $(FUZZFLAGS) $(INC) -Ifuzz -c -o $@.o $<
	$(FUZZCXX) $(FUZZFLAGS) -o $@ $@.o $(FUZZ_OBJS) build/fuzz/dicom_shim.o \
	  -lcjson -lspng -lpng16 -ljpeg $(DCMTK) -lpthread -lm

# The CSV reader alone: csv.c and common.c.
build/fuzz/fuzz_csv: fuzz/fuzz_csv.c fuzz/fuzz_util.h build/fuzz/data/csv.o build/fuzz/core/common.o
	$(FUZZCC) $(WARN) $(FUZZFLAGS) $(INC) -Ifuzz -o $@ $< build/fuzz/data/csv.o build/fuzz/core/common.o

fuzz-build: $(FUZZ_BINS)

# Each target in turn, one process, FUZZ_SECONDS each. New inputs go to
# build/fuzz/corpus/NAME; the committed seeds in fuzz/corpus/NAME are read.
fuzz: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p build/fuzz/corpus/$$t build/fuzz/crashes/$$t; \
	  echo "fuzz: $$t for $(FUZZ_SECONDS) s"; \
	  dict=""; [ $$t = image ] && dict=-dict=fuzz/image.dict; \
	  [ $$t = config ] || [ $$t = safetensors ] || [ $$t = runstate ] && dict=-dict=fuzz/json.dict; \
	  ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions=tests/lsan.supp \
	    ./build/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 $$dict \
	    -artifact_prefix=build/fuzz/crashes/$$t/ -print_final_stats=1 \
	    build/fuzz/corpus/$$t fuzz/corpus/$$t || exit 1; \
	done

# Regenerate the PyTorch fixtures (developers only; needs Debian's python3-torch).
fixtures:
	/usr/bin/python3 tools/mae_twin.py fixtures --out tests/fixtures

# ---- The CUDA backend (src/cuda/*.cu; docs/cuda.md). Without nvcc
# everything above builds as before and `make cuda` says so and fails.
# Hopper code (sm_90) plus compute_90 PTX for later GPUs. The CUDA objects
# live in build/cuda/; `make cuda` relinks ./skelex with them (and a
# cmd_cuda.o that lists the devices); `make skelex` relinks the plain one
# when a CPU object changes.
NVCC      ?= $(or $(shell command -v nvcc 2>/dev/null),$(wildcard /usr/local/cuda/bin/nvcc))
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
CUDAARCH  := -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90
NVFLAGS   := -std=c++17 -O3 $(CUDAARCH) -Xcompiler -Wall,-Wextra,-fno-math-errno -Werror all-warnings -D_GNU_SOURCE
CUDASRC   := $(sort $(wildcard src/cuda/*.cu))
CUDAOBJ   := $(patsubst src/%.cu,build/cuda/%.o,$(CUDASRC))
CUDALIBS  := -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublasLt -lcudart
CUDACLI   := $(filter-out build/opt/cli/cmd_cuda.o,$(CLIOBJ)) build/cuda/cli/cmd_cuda.o

.PHONY: cuda cuda-test cuda-nvcc cuda-bundle cuda-objs
cuda-nvcc:
	@if [ -z "$(NVCC)" ]; then echo "make cuda: nvcc is missing (install the CUDA toolkit, or NVCC=/path/to/nvcc)" >&2; exit 1; fi

build/cuda/%.o: src/%.cu | cuda-nvcc
	@mkdir -p $(dir $@)
	$(NVCC) $(NVFLAGS) $(INC) -MMD -MP -MF $(@:.o=.d) -c -o $@ $<

build/cuda/tests/%.o: tests/%.cu | cuda-nvcc
	@mkdir -p $(dir $@)
	$(NVCC) $(NVFLAGS) $(INC) -Itests -MMD -MP -MF $(@:.o=.d) -c -o $@ $<

# The CUDA sources alone (no CPU library needed): a compile check.
cuda-objs: $(CUDAOBJ)

build/cuda/cli/cmd_cuda.o: src/cli/cmd_cuda.c
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(OPT) $(INC) -DSKELEX_CUDA -MMD -MP -c -o $@ $<

cuda: cuda-nvcc $(CUDACLI) $(CUDAOBJ) build/libskelex.a
	$(CC) $(OPT) -o skelex $(CUDACLI) build/libskelex.a $(CUDAOBJ) $(LIBS) $(CUDALIBS)

build/test_cuda: build/cuda/tests/cuda/test_cuda_layers.o $(CUDAOBJ) build/libskelex.a | cuda-nvcc
	$(CC) $(OPT) -o $@ build/cuda/tests/cuda/test_cuda_layers.o $(CUDAOBJ) build/libskelex.a $(LIBS) $(CUDALIBS)

# Runs the layer checks; without a device it prints one skip line, exit 0.
cuda-test: build/test_cuda
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} ./build/test_cuda

# A self-contained copy of build/test_cuda for a GPU machine that has the
# CUDA toolkit but none of skelex's Debian libraries (scripts/gpu_check.sh):
# the CPU layers it checks against compiled for any x86-64-v3 processor,
# cudart linked statically, libdnnl (and what it needs) beside it in lib/.
# About 45 MiB; cublasLt comes from the GPU machine's CUDA 13.
BUNDLESRC := src/core/common.c src/nn/embed.c src/nn/gemm.c src/nn/layers.c src/nn/loss.c src/nn/optim.c src/nn/profile.c
BUNDLEOBJ := $(patsubst src/%.c,build/bundle/%.o,$(BUNDLESRC))
build/bundle/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(WARN) -O3 -march=x86-64-v3 -fno-math-errno -fopenmp $(INC) -MMD -MP -c -o $@ $<

cuda-bundle: build/cuda/tests/cuda/test_cuda_layers.o $(CUDAOBJ) $(BUNDLEOBJ) | cuda-nvcc
	@rm -rf build/cuda_bundle && mkdir -p build/cuda_bundle/lib
	$(CC) -fopenmp -o build/cuda_bundle/test_cuda build/cuda/tests/cuda/test_cuda_layers.o $(CUDAOBJ) $(BUNDLEOBJ) \
	  -ldnnl -lstdc++ -lm -L$(CUDA_HOME)/lib64 -Wl,-rpath,'$$ORIGIN/lib:/usr/local/cuda/lib64' -lcublasLt \
	  -lcudart_static -ldl -lrt -lpthread
	for l in libdnnl.so.2 libOpenCL.so.1 libgomp.so.1; do \
	  cp -L "$$(ldd build/cuda_bundle/test_cuda | awk -v l=$$l '$$1 == l {print $$3}')" build/cuda_bundle/lib/ || exit 1; done
	@du -sh build/cuda_bundle

clean:
	rm -rf build skelex

-include $(shell find build -name '*.d' 2>/dev/null)
