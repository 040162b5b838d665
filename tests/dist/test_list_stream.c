/* test_list_stream.c: dataset_add_list_stream, the list reader for very large
 * datasets: it names files that do not exist without looking at them (no
 * stat or open per line), gives exactly dataset_add's result on an unsorted
 * list with repeats, comments and relative paths, and takes a sorted list
 * as it is. */
#include "data/data.h"
#include "testlib.h"
#include <stdlib.h>
#include <string.h>

TEST(test_list_stream_matches_dataset_add_without_stat) {
    const char *d = tl_tmpdir();
    char list[700];
    snprintf(list, sizeof list, "%s/list.txt", d);
    FILE *f = fopen(list, "w");
    if (!f) { CHECK(0); return; }
    const int n = 200000;
    fprintf(f, "# a comment\n\n");
    for (int i = 0; i < n; i++) {
        int k = (int)(((long long)i * 7919) % n);  /* a permutation: not sorted */
        if (k % 3 == 0) fprintf(f, "  rel/site%d/img%07d.png \n", k % 17, k);   /* relative to the list's folder */
        else fprintf(f, "/nonexistent/skelex/site%d/img%07d.dcm\n", k % 17, k);
        if (k % 1000 == 0) fprintf(f, "/nonexistent/skelex/site%d/img%07d.dcm\n", k % 17, k);  /* repeats */
    }
    fclose(f);
    sx_err err;
    dataset a, b;
    dataset_init(&a); dataset_init(&b);
    double t0 = sx_now();
    CHECKF(dataset_add_list_stream(&a, list, &err) == 0, "%s", err.msg);
    double t_stream = sx_now() - t0;
    CHECK(dataset_add(&b, list, &err) == 0);
    CHECK(dataset_count(&a) == dataset_count(&b));
    CHECK(dataset_count(&a) >= (size_t)n && dataset_count(&a) <= (size_t)n + n / 1000 + 1);
    int same = dataset_count(&a) == dataset_count(&b);
    for (size_t i = 0; same && i < dataset_count(&a); i++) same = !strcmp(dataset_path(&a, i), dataset_path(&b, i));
    CHECK(same);
    char want[800];
    snprintf(want, sizeof want, "%s/rel/site0/img0000000.png", d);
    CHECK(dataset_find(&a, want) >= 0);
    fprintf(stderr, "    %d lines of missing files: %.3f s\n", n, t_stream);
    // sorted input is kept as it is, and adds onto what is there
    char sorted[700], cmd[1600], out[256];
    snprintf(sorted, sizeof sorted, "%s/sorted.txt", d);
    snprintf(cmd, sizeof cmd, "grep -v '^#' %s | sed 's/^ *//; s/ *$//' | grep /nonexistent | LC_ALL=C sort -u > %s", list, sorted);
    CHECK(tl_run(cmd, out, sizeof out) == 0);
    dataset c;
    dataset_init(&c);
    CHECK(dataset_add_list_stream(&c, sorted, &err) == 0);
    CHECK(dataset_count(&c) > 0 && dataset_count(&c) < dataset_count(&a));
    for (size_t i = 1; i < dataset_count(&c); i++) CHECK(strcmp(dataset_path(&c, i - 1), dataset_path(&c, i)) < 0);
    // a missing list and an empty one are errors, a directory is scanned as dataset_add does
    CHECK(dataset_add_list_stream(&c, "/nonexistent/list.txt", &err) == -1);
    snprintf(sorted, sizeof sorted, "%s/empty.txt", d);
    tl_write_text(sorted, "# nothing\n");
    size_t before = dataset_count(&c);
    CHECK(dataset_add_list_stream(&c, sorted, &err) == -1 && dataset_count(&c) == before);
    dataset_free(&a); dataset_free(&b); dataset_free(&c);
}
