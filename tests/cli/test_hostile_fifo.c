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
    // the image of reconstruct, and --config given as a FIFO
    static const struct { const char *fifo, *args; } direct[] = {
        {"img.png", "reconstruct --model %s/m --image %s/img.png --out %s/r"},
        {"fifo.json", "init --config %s/fifo.json --out %s/m2%s"},
    };
    int rc;
    for (int k = 0; k < 2; k++) {
        hx_fifo(tl_path(direct[k].fifo));
        rc = hx_run(out, sizeof out, direct[k].args, d, d, k ? "" : d);
        CHECKF(rc == 1 && hx_one_line(out, "not a regular file"), "%s: rc %d: %s", direct[k].fifo, rc, out);
    }
    // config.json, then model.safetensors, inside a model folder
    static const char *files[2] = {"config.json", "model.safetensors"};
    for (int k = 0; k < 2; k++) {
        char cmd[1400];
        snprintf(cmd, sizeof cmd, "rm -rf %s/mf && mkdir %s/mf && cp %s/m/%s %s/mf/", d, d, d, files[1 - k], d);
        CHECK(system(cmd) == 0);
        snprintf(cmd, sizeof cmd, "mf/%s", files[k]);
        hx_fifo(tl_path(cmd));
        rc = hx_run(out, sizeof out, "info %s/mf", d);
        CHECKF(rc == 1 && hx_one_line(out, "not a regular file"), "info (%s a FIFO): rc %d: %s", files[k], rc, out);
    }
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
