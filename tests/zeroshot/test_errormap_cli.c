/* test_errormap_cli.c: `skelex errormap` as a user meets it: exit status
 * (0 all done, 1 none, 3 some), a failed output write skips one image and
 * the batch goes on, summary.csv is RFC 4180, same-named inputs in
 * different folders do not overwrite each other, a missing --boxes folder
 * is a usage error before any work. */
#include "../api/api_fixtures.h"
#include <sys/stat.h>
#include <unistd.h>

/* Split RFC 4180 text into rows; the number of fields of each row into
 * counts (cap rows); field `want_field` of row `want_row` into buf. Returns
 * rows, or -1 when a quoted field is not closed. */
static int csv_rows(const char *s, int *counts, int cap, int want_row, int want_field, char *buf, size_t bufcap) {
    int row = 0, field = 0;
    size_t bl = 0;
    while (*s) {
        int q = *s == '"';
        if (q) s++;
        for (;;) {
            if (!*s) { if (q) return -1; break; }
            if (q && *s == '"') {
                if (s[1] == '"') { s += 2; if (row == want_row && field == want_field && bl + 1 < bufcap) buf[bl++] = '"'; continue; }
                s++;
                q = 0;
                continue;
            }
            if (!q && (*s == ',' || *s == '\r' || *s == '\n')) break;
            if (row == want_row && field == want_field && bl + 1 < bufcap) buf[bl++] = *s;
            s++;
        }
        field++;
        if (*s == ',') { s++; continue; }
        if (row < cap) counts[row] = field;
        row++;
        field = 0;
        if (*s == '\r') s++;
        if (*s == '\n') s++;
    }
    if (bufcap) buf[bl < bufcap ? bl : bufcap - 1] = 0;
    return row;
}

TEST(test_errormap_cli_status_and_batch) {
    const char *d = tl_tmpdir();
    CHECK(apifx_model(d) == 0);
    char cmd[4000], out[16384], mdir[600];
    snprintf(mdir, sizeof mdir, "%s/m", d);
    mkdir(tl_path("s1"), 0755);
    mkdir(tl_path("s2"), 0755);
    CHECK(apifx_phantom(tl_path("s1/IM-0001.png"), 70, 60, 0) == 0);
    CHECK(apifx_phantom(tl_path("s2/IM-0001.png"), 70, 60, 1) == 0);
    CHECK(apifx_phantom(tl_path("s2/we,\"ird\".png"), 50, 50, 0) == 0);
    // all succeed: status 0 (it was 1 before: the list was freed before counting)
    snprintf(cmd, sizeof cmd, "./skelex errormap --model %s --out %s/o --passes 2 %s/s1 %s/s2", mdir, d, d, d);
    CHECKF(tl_run(cmd, out, sizeof out) == 0, "%s", out);
    CHECKF(strstr(out, "(3 images, 0 skipped)") != NULL, "%s", out);
    // same-named files in two folders: two maps, the summary names each row's output
    size_t n = 0;
    char *csv = tl_read_file(tl_path("o/summary.csv"), &n);
    int counts[8] = {0};
    char field[600] = "";
    CHECK(csv && csv_rows(csv, counts, 8, 0, 1, field, sizeof field) == 4 && !strcmp(field, "output"));
    for (int r = 0; r < 4; r++) CHECKF(counts[r] == 8, "row %d has %d fields", r, counts[r]);
    char stems[3][600];
    for (int r = 1; r <= 3; r++) {
        csv_rows(csv, counts, 8, r, 1, stems[r - 1], 600);
        char f[700];
        snprintf(f, sizeof f, "o/%s_error.npy", stems[r - 1]);
        struct stat st;
        CHECKF(stat(tl_path(f), &st) == 0, "%s missing", f);
    }
    CHECK(strcmp(stems[0], stems[1]) && strcmp(stems[0], stems[2]) && strcmp(stems[1], stems[2]));
    int weird = 0;
    for (int r = 1; r <= 3; r++) {
        csv_rows(csv, counts, 8, r, 0, field, sizeof field);
        weird += strstr(field, "we,\"ird\".png") != NULL;   // the quotes came back undoubled
    }
    CHECK(weird == 1);
    free(csv);

    // one failed output write (a 16384 x 2 image: overlay + colour bar over the PNG limit)
    // and one unreadable file: both skipped with a message, the rest done, status 3
    uint8_t *wide = malloc(16384 * 2);
    for (int i = 0; i < 16384 * 2; i++) wide[i] = (uint8_t)(i * 7);
    sx_err err;
    CHECK(png_write_u8(tl_path("wide.png"), wide, 16384, 2, 1, &err) == 0);
    free(wide);
    tl_write_text(tl_path("bad.png"), "not an image");
    snprintf(cmd, sizeof cmd, "./skelex errormap --model %s --out %s/p --passes 2 %s/wide.png %s/bad.png %s/s1/IM-0001.png",
             mdir, d, d, d, d);
    CHECKF(tl_run(cmd, out, sizeof out) == 3, "%s", out);
    CHECKF(strstr(out, "(1 images, 2 skipped)") && strstr(out, "PNG limit") && strstr(out, "bad.png"), "%s", out);
    struct stat st;
    CHECK(stat(tl_path("p/IM-0001_error.npy"), &st) == 0 && stat(tl_path("p/wide_error.npy"), &st) != 0);
    csv = tl_read_file(tl_path("p/summary.csv"), &n);
    CHECK(csv && csv_rows(csv, counts, 8, 0, 0, field, sizeof field) == 2);   // header + the one done
    free(csv);
    // none done: status 1
    snprintf(cmd, sizeof cmd, "./skelex errormap --model %s --out %s/q %s/bad.png", mdir, d, d);
    CHECKF(tl_run(cmd, out, sizeof out) == 1, "%s", out);
    // an unwritable output folder: each image fails its write, status 1
    mkdir(tl_path("ro"), 0555);
    if (access(tl_path("ro"), W_OK) != 0) {   // (root can write anywhere: then not testable this way)
        snprintf(cmd, sizeof cmd, "./skelex errormap --model %s --out %s/ro %s/s1", mdir, d, d);
        CHECKF(tl_run(cmd, out, sizeof out) == 1, "%s", out);
    }
    // an output that cannot be written for one image (a folder holds its .npy's name): that
    // image is skipped, the other done, status 3
    mkdir(tl_path("u"), 0755);
    mkdir(tl_path("u/wide_error.npy"), 0755);
    snprintf(cmd, sizeof cmd, "./skelex errormap --model %s --out %s/u --passes 2 %s/wide.png %s/s1/IM-0001.png",
             mdir, d, d, d);
    CHECKF(tl_run(cmd, out, sizeof out) == 3 && strstr(out, "wide_error.npy") && strstr(out, "(1 images, 1 skipped)"),
           "%s", out);
    // a missing --boxes folder: usage error before any work (no output folder made)
    snprintf(cmd, sizeof cmd, "./skelex errormap --model %s --out %s/r --boxes %s/nobox %s/s1", mdir, d, d, d);
    CHECKF(tl_run(cmd, out, sizeof out) == 2 && strstr(out, "nobox"), "%s", out);
    CHECK(stat(tl_path("r"), &st) != 0);
    // --help documents the statuses
    CHECK(tl_run("./skelex errormap --help", out, sizeof out) == 0 && strstr(out, "3 some images"));
}

TEST(test_errormap_cli_boxes) {
    const char *d = tl_tmpdir();
    CHECK(apifx_model(d) == 0);
    char cmd[4000], out[16384];
    mkdir(tl_path("img"), 0755);
    mkdir(tl_path("box"), 0755);
    CHECK(apifx_phantom(tl_path("img/a.png"), 64, 64, 1) == 0);
    CHECK(apifx_phantom(tl_path("img/b.png"), 64, 64, 0) == 0);
    tl_write_text(tl_path("box/a.txt"), "0 0.25 0.25 0.2 0.2\n");
    snprintf(cmd, sizeof cmd, "./skelex errormap --model %s/m --out %s/o --passes 4 --boxes %s/box %s/img", d, d, d, d);
    CHECKF(tl_run(cmd, out, sizeof out) == 0, "%s", out);
    CHECKF(strstr(out, "localization (1 images with boxes, 1 without") != NULL, "%s", out);
    char *j = tl_read_file(tl_path("o/localization.json"), NULL);
    CHECK(j && strstr(j, "\"images_scored\":\t1") && strstr(j, "a.png"));
    free(j);
}
