/* test_patient_from.c: "patient_from": {"name_before": ...} on a synthetic
 * folder with the flatfoot set's naming scheme (augmented copies of one foot
 * grouped, never split), its validation, and tasks/flatfoot.json on the real
 * ../shared/data/flatfoot (skipped when absent). */
#include "data/split.h"
#include "data/task.h"
#include "testlib.h"
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

static void mkdir_p(const char *dir) {
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "    mkdir -p %s failed\n", dir);
}

/* The foot of a Roboflow-style name, independently of samples.c: up to the
 * first "_jpg" in any case. */
static void foot_of(const char *path, char *out, size_t cap) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    size_t i = 1;
    while (b[i] && strncasecmp(b + i, "_jpg", 4)) i++;
    snprintf(out, cap, "%.*s", (int)(i < cap ? i : cap - 1), b);
}

/* No foot (patient) in two parts: every sample of a patient has the same fold value. */
static int feet_cross(const task *t, const split *sp, size_t *n_test_feet) {
    int cross = 0;
    *n_test_feet = 0;
    for (size_t i = 0; i < t->n; i++) {
        int first = 1;
        for (size_t j = 0; j < i; j++)
            if (!strcmp(t->samples[i].patient, t->samples[j].patient)) {
                first = 0;
                if (sp->fold[i] != sp->fold[j]) cross++;
                break;
            }
        if (first && sp->fold[i] == -1) (*n_test_feet)++;
    }
    return cross;
}

static int write_task(const char *path, const char *patient_from) {
    char json[1024];
    snprintf(json, sizeof json, "{\"name\": \"ff\", \"type\": \"binary\", \"image_root\": \"ff\", "
             "\"class_folders\": [\"normal\", \"flatfoot\"], \"patient_from\": %s}", patient_from);
    return tl_write_text(path, json);
}

TEST(test_patient_from_name_before_groups_copies) {
    const char *d = tl_tmpdir();
    char p[1024];
    int n_files = 0;
    for (int c = 0; c < 2; c++) {
        snprintf(p, sizeof p, "%s/ff/%s", d, c ? "flatfoot" : "normal");
        mkdir_p(p);
        for (int foot = 0; foot < 30; foot++) {
            int copies = 1 + (foot * 7 + c) % 3;   /* 1 to 3 augmented copies */
            for (int k = 0; k < copies; k++) {
                /* names as in the set: 103L_JPG.rf.<hash>.jpg, 74L-125-_JPG.rf..., a few _jpg */
                const char *marker = foot % 10 == 3 ? "_jpg" : "_JPG";
                if (foot % 4 == 1) snprintf(p, sizeof p, "%s/ff/%s/74%c-%d-%s.rf.%08x%d.jpg", d, c ? "flatfoot" : "normal",
                                            c ? 'R' : 'L', 100 + foot, marker, 0x9e3779b9u * (unsigned)(foot + 1), k);
                else snprintf(p, sizeof p, "%s/ff/%s/%d%c%s.rf.%08x%d.jpg", d, c ? "flatfoot" : "normal", 2 * foot + c,
                              foot % 2 ? 'R' : 'L', marker, 0x85ebca6bu * (unsigned)(foot + 1), k);
                CHECK(tl_write_text(p, "") == 0);
                n_files++;
            }
        }
    }
    snprintf(p, sizeof p, "%s/task.json", d);
    CHECK(write_task(p, "{\"name_before\": \"_JPG\", \"ignore_case\": true}") == 0);
    task t;
    sx_err err;
    int rc = task_load(p, d, &t, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc) return;
    CHECK(t.has_patients);
    CHECK(t.n == (size_t)n_files);
    CHECK(task_patient_count(&t) == 60);
    for (size_t i = 0; i < t.n; i++) {
        char want[256];
        foot_of(t.samples[i].path, want, sizeof want);
        CHECKF(!strcmp(t.samples[i].patient, want), "%s: patient '%s', want '%s'", t.samples[i].path,
               t.samples[i].patient, want);
    }
    for (uint64_t seed = 0; seed < 5; seed++) {
        split sp;
        CHECK(split_make(&t, 0.2, 3, seed, &sp, &err) == 0);
        size_t test_feet;
        CHECKF(feet_cross(&t, &sp, &test_feet) == 0, "seed %llu: a foot is on two sides", (unsigned long long)seed);
        CHECK(test_feet >= 8 && test_feet <= 16);   /* about 20 % of the 60 feet */
        split_free(&sp);
    }
    /* the same files as their own patients would put copies on both sides: the grouping matters */
    task_free(&t);
    snprintf(p, sizeof p, "%s/task_nogroup.json", d);
    CHECK(tl_write_text(p, "{\"name\": \"ff\", \"type\": \"binary\", \"image_root\": \"ff\", "
                           "\"class_folders\": [\"normal\", \"flatfoot\"]}") == 0);
    CHECK(task_load(p, d, &t, &err) == 0);
    /* patients are paths here; count copies of one foot split apart, using foot_of as the truth */
    split sp;
    CHECK(split_make(&t, 0.2, 3, 0, &sp, &err) == 0);
    int apart = 0;
    for (size_t i = 0; i < t.n; i++)
        for (size_t j = 0; j < i; j++) {
            char a[256], b[256];
            foot_of(t.samples[i].path, a, sizeof a);
            foot_of(t.samples[j].path, b, sizeof b);
            if (!strcmp(a, b) && (sp.fold[i] == -1) != (sp.fold[j] == -1)) apart++;
        }
    CHECK(apart > 0);
    split_free(&sp);
    task_free(&t);
}

TEST(test_patient_from_name_before_rules) {
    const char *d = tl_tmpdir();
    char p[1024], tj[1024];
    snprintf(p, sizeof p, "%s/ff/normal", d);
    mkdir_p(p);
    snprintf(p, sizeof p, "%s/ff/flatfoot", d);
    mkdir_p(p);
    snprintf(p, sizeof p, "%s/ff/normal/103L_JPG.rf.aa.jpg", d);
    tl_write_text(p, "");
    snprintf(p, sizeof p, "%s/ff/flatfoot/89R_jpg.rf.bb.jpg", d);
    tl_write_text(p, "");
    snprintf(tj, sizeof tj, "%s/task.json", d);
    task t;
    sx_err err;
    /* case-sensitive by default: the _jpg copy has no _JPG, an error naming the file */
    CHECK(write_task(tj, "{\"name_before\": \"_JPG\"}") == 0);
    CHECK(task_load(tj, d, &t, &err) == -1);
    CHECKF(strstr(err.msg, "89R_jpg.rf.bb.jpg") && strstr(err.msg, "'_JPG'"), "%s", err.msg);
    CHECK(write_task(tj, "{\"name_before\": \"_JPG\", \"ignore_case\": false}") == 0);
    CHECK(task_load(tj, d, &t, &err) == -1);
    CHECK(write_task(tj, "{\"name_before\": \"_JPG\", \"ignore_case\": true}") == 0);
    CHECKF(task_load(tj, d, &t, &err) == 0, "%s", err.msg);
    CHECK(t.n == 2 && !strcmp(t.samples[0].patient, "103L") && !strcmp(t.samples[1].patient, "89R"));
    task_free(&t);
    /* a marker only at the very start would leave no id: an error, never an empty patient */
    CHECK(write_task(tj, "{\"name_before\": \"1\"}") == 0);
    CHECK(task_load(tj, d, &t, &err) == -1 && strstr(err.msg, "103L_JPG.rf.aa.jpg"));
    CHECK(write_task(tj, "{\"name_before\": \".rf.\"}") == 0);
    CHECKF(task_load(tj, d, &t, &err) == 0, "%s", err.msg);
    CHECK(t.n == 2 && !strcmp(t.samples[0].patient, "103L_JPG") && !strcmp(t.samples[1].patient, "89R_jpg"));
    task_free(&t);
    /* malformed rules are refused with the accepted forms */
    const char *bad[] = {"{\"name_before\": \"\"}", "{\"name_before\": 3}", "{\"name_before\": \"a/b\"}",
                         "{\"name_before\": \"_JPG\", \"ignore_case\": 1}", "{\"name_before\": \"_JPG\", \"name_chars\": 3}",
                         "{\"ignore_case\": true}", "{\"name_before\": \"_JPG\", \"ignore_case\": true, \"x\": 1}",
                         "{\"name_chars\": 3, \"ignore_case\": true}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(write_task(tj, bad[i]) == 0);
        CHECKF(task_load(tj, d, &t, &err) == -1 && strstr(err.msg, "name_before"), "%s: %s", bad[i], err.msg);
    }
    /* with a CSV patient column it is one or the other */
    CHECK(tl_write_text(tj, "{\"name\": \"x\", \"type\": \"binary\", \"image_root\": \"ff\", \"csv\": \"a.csv\", "
                            "\"image_column\": \"i\", \"label_column\": \"l\", \"patient_column\": \"p\", "
                            "\"patient_from\": {\"name_before\": \"_JPG\"}}") == 0);
    CHECK(task_load(tj, d, &t, &err) == -1 && strstr(err.msg, "at most one"));
}

/* labels of two tasks: same type, names and order */
TEST(test_task_same_labels) {
    const char *d = tl_tmpdir();
    char p[1024];
    snprintf(p, sizeof p, "%s/a", d);
    CHECK(tl_synthetic_task(p, 2) == 0);
    snprintf(p, sizeof p, "%s/a/task.json", d);
    task a, b;
    sx_err err;
    snprintf(p + 512, 400, "%s/a", d);
    CHECK(task_load(p, p + 512, &a, &err) == 0);
    CHECK(task_load(p, p + 512, &b, &err) == 0);
    CHECK(task_same_labels(&a, &b, &err) == 0);
    char *tmp = b.class_names[0];
    b.class_names[0] = b.class_names[1];
    b.class_names[1] = tmp;
    CHECK(task_same_labels(&a, &b, &err) == -1 && strstr(err.msg, "class 0") && strstr(err.msg, "label spaces differ"));
    b.class_names[1] = b.class_names[0];
    b.class_names[0] = tmp;
    b.type = TASK_ORDINAL;
    CHECK(task_same_labels(&a, &b, &err) == -1 && strstr(err.msg, "ordinal"));
    b.type = TASK_BINARY;
    task_free(&a);
    task_free(&b);
}

TEST(test_flatfoot_real_task) {
    if (access("../shared/data/flatfoot", R_OK) != 0) TEST_SKIP("../shared/data/flatfoot is absent");
    task t;
    sx_err err;
    int rc = task_load("tasks/flatfoot.json", "../shared/data", &t, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc) return;
    CHECK(t.type == TASK_BINARY && t.n_classes == 2);
    CHECK(!strcmp(t.class_names[0], "normal") && !strcmp(t.class_names[1], "flatfoot"));
    size_t counts[2];
    task_class_counts(&t, counts);
    CHECKF(counts[0] == 275 && counts[1] == 294, "%zu normal, %zu flatfoot", counts[0], counts[1]);
    CHECK(t.has_patients);
    size_t feet = task_patient_count(&t);
    CHECKF(feet == 216, "%zu feet", feet);
    for (size_t i = 0; i < t.n; i++) {
        char want[256];
        foot_of(t.samples[i].path, want, sizeof want);
        CHECKF(!strcmp(t.samples[i].patient, want), "%s -> %s", t.samples[i].path, t.samples[i].patient);
    }
    split sp;
    CHECK(split_make(&t, 0.1, 5, 0, &sp, &err) == 0);   /* the default split of probe / finetune */
    size_t test_feet, n_test = 0;
    CHECK(feet_cross(&t, &sp, &test_feet) == 0);
    for (size_t i = 0; i < t.n; i++) n_test += sp.fold[i] == -1;
    CHECKF(n_test > 40 && n_test < 75 && test_feet > 15 && test_feet < 30, "%zu test images, %zu feet", n_test, test_feet);
    split_free(&sp);
    task_free(&t);
}
