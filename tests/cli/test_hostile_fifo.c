/* test_hostile_fifo.c: every kind of path the program reads, replaced by a
 * FIFO that nobody writes (issue 21, item 3). Each command runs under
 * `timeout`: it must not hang, and must say in one line that the path is not
 * a regular file (or, for a folder or list entry, skip it and go on). */
#include "hx.h"
#include <unistd.h>

/* A tiny model dir/m and images dir/data; returns 0 when made. */
static int setup(const char *d, char *out, size_t cap) {
    char p[700];
    snprintf(p, sizeof p, "%s/cfg.json", d);
    tl_write_text(p, HX_CFG);
    hx_images(tl_path("data"), 3);
    return hx_run(out, cap, "init --config %s/cfg.json --out %s/m", d, d);
}

TEST(hostile_fifo_image_and_model_files) {
    const char *d = tl_tmpdir();
    char out[16384];
    CHECKF(setup(d, out, sizeof out) == 0, "%s", out);
    // the image of reconstruct
    hx_fifo(tl_path("img.png"));
    int rc = hx_run(out, sizeof out, "reconstruct --model %s/m --image %s/img.png --out %s/r", d, d, d);
    CHECKF(rc == 1 && hx_one_line(out, "not a regular file"), "reconstruct: rc %d: %s", rc, out);
    // --config given as a FIFO
    hx_fifo(tl_path("fifo.json"));
    rc = hx_run(out, sizeof out, "init --config %s/fifo.json --out %s/m2", d, d);
    CHECKF(rc == 1 && hx_one_line(out, "not a regular file"), "init: rc %d: %s", rc, out);
    // config.json inside a model folder
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "mkdir -p %s/mc && cp %s/m/model.safetensors %s/mc/", d, d, d);
    CHECK(system(cmd) == 0);
    hx_fifo(tl_path("mc/config.json"));
    rc = hx_run(out, sizeof out, "info %s/mc", d);
    CHECKF(rc == 1 && hx_one_line(out, "not a regular file"), "info (config.json): rc %d: %s", rc, out);
    // model.safetensors
    snprintf(cmd, sizeof cmd, "mkdir -p %s/ms && cp %s/m/config.json %s/ms/", d, d, d);
    CHECK(system(cmd) == 0);
    hx_fifo(tl_path("ms/model.safetensors"));
    rc = hx_run(out, sizeof out, "info %s/ms", d);
    CHECKF(rc == 1 && hx_one_line(out, "not a regular file"), "info (safetensors): rc %d: %s", rc, out);
}

TEST(hostile_fifo_task_and_boxes) {
    const char *d = tl_tmpdir();
    char out[16384];
    CHECKF(setup(d, out, sizeof out) == 0, "%s", out);
    hx_fifo(tl_path("task.json"));
    int rc = hx_run(out, sizeof out, "probe --task %s/task.json --model %s/m --out %s/p", d, d, d);
    CHECKF(rc != HX_TIMED_OUT && rc != 0 && strstr(out, "not a regular file"), "probe: rc %d: %s", rc, out);
    // a YOLO box file: the map is written, the box file is refused, no hang
    char boxes[700];
    snprintf(boxes, sizeof boxes, "%s/boxes", d);
    mkdir(boxes, 0755);
    hx_fifo(tl_path("boxes/img000.txt"));
    rc = hx_run(out, sizeof out, "errormap --model %s/m --out %s/e --passes 2 --boxes %s %s/data/img000.png", d, d, boxes, d);
    CHECKF(rc != HX_TIMED_OUT && strstr(out, "not a regular file"), "errormap --boxes: rc %d: %s", rc, out);
}

TEST(hostile_fifo_list_entry_and_scanned_link) {
    const char *d = tl_tmpdir();
    char out[16384], p[700];
    CHECKF(setup(d, out, sizeof out) == 0, "%s", out);
    // a list file naming a FIFO beside a good image: the FIFO is skipped
    hx_fifo(tl_path("entry.png"));
    snprintf(p, sizeof p, "%s/list.txt", d);
    char list[2000];
    snprintf(list, sizeof list, "%s/entry.png\n%s/data/img000.png\n", d, d);
    tl_write_text(p, list);
    int rc = hx_run(out, sizeof out, "pretrain --data %s --config %s/cfg.json --out %s/run1 --steps 2 --batch 2", p, d, d);
    CHECKF(rc == 0 && strstr(out, "not a regular file"), "pretrain (list): rc %d: %s", rc, out);
    // a symbolic link to a FIFO inside a scanned folder
    char fifo[700], link[700];
    snprintf(fifo, sizeof fifo, "%s/elsewhere.png", d);
    hx_fifo(fifo);
    snprintf(link, sizeof link, "%s/data/link.png", d);
    CHECK(symlink(fifo, link) == 0);
    rc = hx_run(out, sizeof out, "pretrain --data %s/data --config %s/cfg.json --out %s/run2 --steps 2 --batch 2", d, d, d);
    CHECKF(rc == 0, "pretrain (scanned link): rc %d: %s", rc, out);
    rc = hx_run(out, sizeof out, "bench data --data %s/data --size 32 --batch 2 --threads 1 --seconds 0.2", d);
    CHECKF(rc == 0 && strstr(out, "decode_failed="), "bench data (scanned link): rc %d: %s", rc, out);
    // a FIFO given directly as --data
    rc = hx_run(out, sizeof out, "pretrain --data %s --config %s/cfg.json --out %s/run3 --steps 1", fifo, d, d);
    CHECKF(rc != HX_TIMED_OUT && rc != 0, "pretrain --data FIFO: rc %d: %s", rc, out);
}
