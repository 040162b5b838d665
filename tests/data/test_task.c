/* test_task.c: task files (CSV and class-folder tasks, validation, missing
 * files, hostile CSV), the shipped tasks/ files, the real FracAtlas and knee
 * tasks when ../shared/data is present (splits: test_split.c). */
#include "data/split.h"
#include "data/task.h"
#include "testlib.h"
#include "core/rng.h"
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* ------------------------------------------------------------ helpers */

static void mkdirs(const char *path) {
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') { *p = 0; mkdir(buf, 0755); *p = '/'; }
    mkdir(buf, 0755);
}

/* An empty file at root/rel (task loading only stat()s images). */
static void touch(const char *root, const char *rel) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    char *slash = strrchr(p, '/');
    *slash = 0;
    mkdirs(p);
    *slash = '/';
    tl_write_text(p, "");
}

/* Write a task JSON into the scratch dir and load it against root. */
static int load_json(const char *json, const char *root, unsigned flags, task *t, sx_err *err) {
    char p[512];
    snprintf(p, sizeof p, "%s/task.json", tl_tmpdir());
    tl_write_text(p, json);
    return task_load_flags(p, root, flags, t, err);
}

static char *root_dir(const char *name) {
    static char buf[512];
    snprintf(buf, sizeof buf, "%s/%s", tl_tmpdir(), name);
    mkdirs(buf);
    return buf;
}

#define CHECK_ERR(call, needle) do { sx_err e_ = {{0}}; task t_; \
    CHECKF((call(&t_, &e_)) != 0, "expected failure containing '%s'", needle); \
    CHECKF(strstr(e_.msg, needle) != NULL, "message '%s' lacks '%s'", e_.msg, needle); \
    task_free(&t_); } while (0)

/* --------------------------------------------------------------- CSV */

TEST(test_task_csv_basic) {
    char *root = root_dir("data");
    touch(root, "ds/images/A/IMG1.jpg");
    touch(root, "ds/images/B/IMG2.jpg");
    touch(root, "ds/images/B/IMG,3.jpg");
    touch(root, "ds/images/A/say \"hi\".png");
    /* BOM, CRLF, a quoted comma, an escaped quote, a quoted newline, a blank line */
    const char csv[] = "\xEF\xBB\xBFid,note,label\r\n"
                       "IMG1.jpg,plain,1\r\n"
                       "IMG2.jpg,\"two\nlines\",0\r\n"
                       "\r\n"
                       "\"IMG,3.jpg\",\"a, b\",1\r\n"
                       "\"say \"\"hi\"\".png\",x,0";
    char p[600];
    snprintf(p, sizeof p, "%s/ds/labels.csv", root);
    tl_write_file(p, csv, sizeof csv - 1);
    task t;
    sx_err err;
    int rc = load_json("{\"name\": \"t\", \"type\": \"binary\", \"image_root\": \"ds/images\", \"image_dirs\": [\"A\", \"B\"],"
                       " \"csv\": \"ds/labels.csv\", \"image_column\": \"id\", \"label_column\": \"label\"}",
                       root, 0, &t, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc) return;
    CHECK(t.n == 4 && t.n_classes == 2 && t.type == TASK_BINARY && !t.has_patients);
    CHECK(strcmp(t.class_names[0], "0") == 0 && strcmp(t.class_names[1], "1") == 0);
    int want[4] = {1, 0, 1, 0};
    const char *rel[4] = {"ds/images/A/IMG1.jpg", "ds/images/B/IMG2.jpg", "ds/images/B/IMG,3.jpg", "ds/images/A/say \"hi\".png"};
    for (int i = 0; i < 4 && i < (int)t.n; i++) {
        CHECK(t.samples[i].label == want[i] && t.samples[i].target == want[i]);
        CHECKF(strcmp(task_rel_path(&t, (size_t)i), rel[i]) == 0, "%s", task_rel_path(&t, (size_t)i));
        CHECK(strcmp(t.samples[i].patient, t.samples[i].path) == 0);
    }
    size_t counts[2];
    task_class_counts(&t, counts);
    CHECK(counts[0] == 2 && counts[1] == 2);
    CHECK(task_patient_count(&t) == 4);
    task_free(&t);
}

TEST(test_task_csv_label_forms) {
    char *root = root_dir("data");
    for (int i = 0; i < 8; i++) {
        char r[64];
        snprintf(r, sizeof r, "img/%d.png", i);
        touch(root, r);
    }
    char p[600];
    snprintf(p, sizeof p, "%s/d.csv", root);
    tl_write_text(p, "stem,frac,tumor,benign,malignant,pid\n"
                  "0,1.0,1,1,0,p1\n"
                  "1,,0,0,0,p1\n"
                  "2,1,1,0,1,p2\n"
                  "3,0,1,0,1,p3\n"
                  "4,,1,1,1,p4\n"
                  "5,1,0,0,0,p5\n"
                  "6,1,1,0,0,p6\n"
                  "7,0,0,0,0,p6\n");
    task t;
    sx_err err;
    /* label_map for empty cells, numeric match of "1.0", image_suffix, patient column */
    int rc = load_json("{\"name\": \"f\", \"type\": \"binary\", \"image_root\": \"img\", \"csv\": \"d.csv\","
                       " \"image_column\": \"stem\", \"image_suffix\": \".png\", \"label_column\": \"frac\","
                       " \"label_map\": {\"\": \"no\", \"0\": \"no\", \"1\": \"yes\"}, \"classes\": [\"no\", \"yes\"],"
                       " \"patient_column\": \"pid\"}", root, 0, &t, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (!rc) {
        int want[8] = {1, 0, 1, 0, 0, 1, 1, 0};
        CHECK(t.n == 8 && t.has_patients);
        for (size_t i = 0; i < t.n; i++) CHECK(t.samples[i].label == want[i]);
        CHECK(strcmp(t.samples[1].patient, "p1") == 0 && task_patient_count(&t) == 6);
    }
    task_free(&t);
    /* one-hot columns with a null class, a where filter and skipped invalid rows */
    rc = load_json("{\"name\": \"m\", \"type\": \"multiclass\", \"image_root\": \"img\", \"csv\": \"d.csv\","
                   " \"image_column\": \"stem\", \"image_suffix\": \".png\", \"where\": {\"tumor\": [\"1\"]},"
                   " \"label_columns\": [null, \"benign\", \"malignant\"], \"classes\": [\"none\", \"benign\", \"malignant\"],"
                   " \"invalid_labels\": \"skip\"}", root, 0, &t, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (!rc) {
        /* tumor=1 rows: 0 (benign), 2 (malignant), 3 (malignant), 4 (both: skipped), 6 (none) */
        CHECK(t.n == 4 && t.n_invalid == 1);
        int want[4] = {1, 2, 2, 0};
        for (size_t i = 0; i < t.n && i < 4; i++) CHECK(t.samples[i].label == want[i]);
    }
    task_free(&t);
    /* without "skip" the same row is an error naming the line */
    CHECK(load_json("{\"name\": \"m\", \"type\": \"multiclass\", \"image_root\": \"img\", \"csv\": \"d.csv\","
                    " \"image_column\": \"stem\", \"image_suffix\": \".png\", \"where\": {\"tumor\": 1},"
                    " \"label_columns\": [null, \"benign\", \"malignant\"], \"classes\": [\"none\", \"benign\", \"malignant\"]}",
                    root, 0, &t, &err) != 0);
    CHECKF(strstr(err.msg, "d.csv:6") && strstr(err.msg, "more than one"), "%s", err.msg);
}

TEST(test_task_regression_and_headerless) {
    char *root = root_dir("data");
    touch(root, "hands/1377.png");
    touch(root, "hands/1378.png");
    touch(root, "hands/1379.png");
    char p[600];
    snprintf(p, sizeof p, "%s/ba.csv", root);
    tl_write_text(p, "id,boneage,male\n1377,180,False\n1378,12.5,True\n1379,94,False\n");
    task t;
    sx_err err;
    int rc = load_json("{\"name\": \"ba\", \"type\": \"regression\", \"image_root\": \"hands\", \"csv\": \"ba.csv\","
                       " \"image_column\": \"id\", \"image_suffix\": \".png\", \"label_column\": \"boneage\"}", root, 0, &t, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (!rc) {
        CHECK(t.n == 3 && t.n_classes == 1 && strcmp(t.class_names[0], "boneage") == 0);
        CHECK(t.samples[1].target == 12.5 && t.samples[1].label == -1);
    }
    task_free(&t);
    rc = load_json("{\"name\": \"sex\", \"type\": \"binary\", \"image_root\": \"hands\", \"csv\": \"ba.csv\","
                   " \"image_column\": \"id\", \"image_suffix\": \".png\", \"label_column\": \"male\","
                   " \"label_map\": {\"False\": \"female\", \"True\": \"male\"}, \"classes\": [\"female\", \"male\"]}",
                   root, 0, &t, &err);
    CHECKF(rc == 0 && t.samples[1].label == 1 && t.samples[0].label == 0, "%s", err.msg);
    task_free(&t);
    /* no header: columns by number */
    snprintf(p, sizeof p, "%s/nh.csv", root);
    tl_write_text(p, "1377.png,1\n1378.png,0\n");
    rc = load_json("{\"name\": \"nh\", \"type\": \"binary\", \"image_root\": \"hands\", \"csv\": \"nh.csv\","
                   " \"csv_header\": false, \"image_column\": 0, \"label_column\": 1}", root, 0, &t, &err);
    CHECKF(rc == 0 && t.n == 2 && t.samples[0].label == 1, "%s", err.msg);
    task_free(&t);
    /* a non-numeric target */
    tl_write_text(p, "1377.png,abc\n");
    CHECK(load_json("{\"name\": \"nh\", \"type\": \"regression\", \"image_root\": \"hands\", \"csv\": \"nh.csv\","
                    " \"csv_header\": false, \"image_column\": 0, \"label_column\": 1}", root, 0, &t, &err) != 0);
    CHECKF(strstr(err.msg, "not a number"), "%s", err.msg);
}

TEST(test_task_class_folders) {
    char *root = root_dir("data");
    touch(root, "knee/train/0/9000001L.jpg");
    touch(root, "knee/train/0/sub/9000002R.JPG");
    touch(root, "knee/train/0/.hidden.jpg");
    touch(root, "knee/train/0/notes.txt");
    touch(root, "knee/train/1/9000001R.png");
    touch(root, "knee/val/0/9000003L.jpeg");
    touch(root, "knee/val/1/9000002L.jpg");
    task t;
    sx_err err;
    int rc = load_json("{\"name\": \"k\", \"type\": \"ordinal\", \"image_root\": \"knee\", \"image_dirs\": [\"train\", \"val\"],"
                       " \"class_folders\": [\"0\", \"1\"], \"patient_from\": {\"name_chars\": 7}}", root, 0, &t, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (!rc) {
        CHECK(t.n == 5 && t.type == TASK_ORDINAL && t.has_patients);
        size_t c[2];
        task_class_counts(&t, c);
        CHECK(c[0] == 3 && c[1] == 2);
        CHECK(task_patient_count(&t) == 3);
        CHECK(strcmp(t.samples[0].patient, "9000001") == 0);
        CHECK(strstr(t.samples[1].path, "sub/9000002R.JPG") != NULL);
    }
    task_free(&t);
    /* a class folder missing in one of the dirs */
    CHECK(load_json("{\"name\": \"k\", \"type\": \"multiclass\", \"image_root\": \"knee\", \"image_dirs\": [\"train\", \"val\"],"
                    " \"class_folders\": [\"0\", \"1\", \"2\"]}", root, 0, &t, &err) != 0);
    CHECKF(strstr(err.msg, "2 class folder(s) missing") && strstr(err.msg, "train/2"), "%s", err.msg);
    /* csv keys are rejected */
    CHECK(load_json("{\"name\": \"k\", \"type\": \"binary\", \"image_root\": \"knee/train\","
                    " \"class_folders\": [\"0\", \"1\"], \"label_column\": \"x\"}", root, 0, &t, &err) != 0);
    CHECKF(strstr(err.msg, "'label_column' applies to csv tasks"), "%s", err.msg);
}

TEST(test_task_study_dirs) {
    char *root = root_dir("data");
    touch(root, "mura/MURA-v1.1/train/XR_WRIST/patient00001/study1_positive/image1.png");
    touch(root, "mura/MURA-v1.1/train/XR_WRIST/patient00001/study1_positive/image2.png");
    touch(root, "mura/MURA-v1.1/train/XR_WRIST/patient00001/study1_positive/._image1.png");
    touch(root, "mura/MURA-v1.1/train/XR_HAND/patient00001/study1_negative/image1.png");
    touch(root, "mura/MURA-v1.1/valid/XR_WRIST/patient00009/study1_negative/image1.png");
    char p[600];
    snprintf(p, sizeof p, "%s/mura/MURA-v1.1/train_labeled_studies.csv", root);
    tl_write_text(p, "MURA-v1.1/train/XR_WRIST/patient00001/study1_positive/,1\n"
                  "MURA-v1.1/train/XR_HAND/patient00001/study1_negative/,0\n");
    snprintf(p, sizeof p, "%s/mura/MURA-v1.1/valid_labeled_studies.csv", root);
    tl_write_text(p, "MURA-v1.1/valid/XR_WRIST/patient00009/study1_negative/,0\r\n");
    const char *json = "{\"name\": \"mura\", \"type\": \"binary\", \"image_root\": \"mura\","
                       " \"csv\": [\"mura/MURA-v1.1/train_labeled_studies.csv\", \"mura/MURA-v1.1/valid_labeled_studies.csv\"],"
                       " \"csv_header\": false, \"image_column\": 0, \"label_column\": 1, \"study_dirs\": true,"
                       " \"patient_from\": {\"path_component_prefix\": \"patient\"}}";
    task t;
    sx_err err;
    int rc = load_json(json, root, 0, &t, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (!rc) {
        CHECK(t.n == 4);
        CHECK(t.samples[0].label == 1 && t.samples[1].label == 1 && t.samples[2].label == 0);
        CHECK(strcmp(t.samples[0].patient, "patient00001") == 0 && strcmp(t.samples[3].patient, "patient00009") == 0);
        CHECK(task_patient_count(&t) == 2);
    }
    task_free(&t);
    /* a listed study that is missing is reported */
    snprintf(p, sizeof p, "%s/mura/MURA-v1.1/valid_labeled_studies.csv", root);
    tl_write_text(p, "MURA-v1.1/valid/XR_WRIST/patient00010/study1_negative/,0\n");
    CHECK(load_json(json, root, 0, &t, &err) != 0);
    CHECKF(strstr(err.msg, "1 listed studies are missing") && strstr(err.msg, "patient00010"), "%s", err.msg);
}

/* ------------------------------------------------------- validation */

static char g_root[512];   /* test-local: set by test_task_validation before the CHECK_ERR calls */

#define TASK_JSON(body) "{\"name\": \"v\", \"image_root\": \"img\", " body "}"
#define LOADER(fn, body) static int fn(task *t, sx_err *e) { return load_json(TASK_JSON(body), g_root, 0, t, e); }
LOADER(ld_bad_type, "\"type\": \"ordinalish\", \"class_folders\": [\"a\", \"b\"]")
LOADER(ld_no_type, "\"class_folders\": [\"a\", \"b\"]")
LOADER(ld_both, "\"type\": \"binary\", \"class_folders\": [\"a\", \"b\"], \"csv\": \"d.csv\"")
LOADER(ld_neither, "\"type\": \"binary\"")
LOADER(ld_unknown_key, "\"type\": \"binary\", \"class_folders\": [\"a\", \"b\"], \"lable_column\": \"x\"")
LOADER(ld_no_column, "\"type\": \"binary\", \"csv\": \"d.csv\", \"image_column\": \"file\", \"label_column\": \"y\"")
LOADER(ld_no_label_col, "\"type\": \"binary\", \"csv\": \"d.csv\", \"image_column\": \"id\", \"label_column\": \"grade\"")
LOADER(ld_bad_label, "\"type\": \"binary\", \"csv\": \"bad_label.csv\", \"image_column\": \"id\", \"label_column\": \"y\"")
LOADER(ld_dup, "\"type\": \"binary\", \"csv\": \"dup.csv\", \"image_column\": \"id\", \"label_column\": \"y\"")
LOADER(ld_missing, "\"type\": \"binary\", \"csv\": \"missing.csv\", \"image_column\": \"id\", \"label_column\": \"y\"")
LOADER(ld_no_csv, "\"type\": \"binary\", \"csv\": \"nope.csv\", \"image_column\": \"id\", \"label_column\": \"y\"")
LOADER(ld_ambiguous, "\"type\": \"binary\", \"image_dirs\": [\"\", \"sub\"], \"csv\": \"amb.csv\", \"image_column\": \"id\", \"label_column\": \"y\"")
LOADER(ld_no_dir, "\"type\": \"binary\", \"image_dirs\": [\"x1\", \"x2\"], \"csv\": \"d.csv\", \"image_column\": \"id\", \"label_column\": \"y\"")
LOADER(ld_empty_class, "\"type\": \"multiclass\", \"csv\": \"d.csv\", \"image_column\": \"id\", \"label_column\": \"y\", \"classes\": [\"0\", \"1\", \"2\"]")
LOADER(ld_three_binary, "\"type\": \"binary\", \"csv\": \"d.csv\", \"image_column\": \"id\", \"label_column\": \"y\", \"classes\": [\"0\", \"1\", \"2\"]")
LOADER(ld_multi_no_classes, "\"type\": \"multiclass\", \"csv\": \"d.csv\", \"image_column\": \"id\", \"label_column\": \"y\"")
LOADER(ld_dup_class, "\"type\": \"multiclass\", \"class_folders\": [\"a\", \"a\"]")
LOADER(ld_few_fields, "\"type\": \"binary\", \"csv\": \"short.csv\", \"image_column\": \"id\", \"label_column\": \"y\"")
static int ld_no_root(task *t, sx_err *e) {
    return load_json("{\"name\": \"v\", \"type\": \"binary\", \"image_root\": \"nowhere\", \"class_folders\": [\"a\", \"b\"]}",
                     g_root, 0, t, e);
}
static int ld_not_json(task *t, sx_err *e) { return load_json("{\"name\": ", g_root, 0, t, e); }

TEST(test_task_validation) {
    snprintf(g_root, sizeof g_root, "%s", root_dir("data"));
    touch(g_root, "img/a.jpg");
    touch(g_root, "img/b.jpg");
    touch(g_root, "img/sub/b.jpg");
    char p[600];
    const struct { const char *name, *text; } csvs[] = {
        {"d.csv", "id,y\na.jpg,0\nsub/b.jpg,1\n"},
        {"bad_label.csv", "id,y\na.jpg,0\nsub/b.jpg,2\n"},
        {"dup.csv", "id,y\na.jpg,0\nsub/b.jpg,1\na.jpg,1\n"},
        {"missing.csv", "id,y\na.jpg,0\nb.jpg,1\nm1.jpg,1\nm2.jpg,1\nm3.jpg,0\nm4.jpg,0\nm5.jpg,1\nm6.jpg,1\nm7.jpg,1\n"},
        {"short.csv", "id,y\na.jpg\n"},
        {"amb.csv", "id,y\na.jpg,0\nb.jpg,1\n"},
    };
    for (size_t i = 0; i < sizeof csvs / sizeof csvs[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", g_root, csvs[i].name);
        tl_write_text(p, csvs[i].text);
    }
    CHECK_ERR(ld_bad_type, "unknown type 'ordinalish'");
    CHECK_ERR(ld_no_type, "missing 'type'");
    CHECK_ERR(ld_both, "exactly one of 'class_folders' and 'csv'");
    CHECK_ERR(ld_neither, "exactly one of 'class_folders' and 'csv'");
    CHECK_ERR(ld_unknown_key, "unknown key 'lable_column'");
    CHECK_ERR(ld_no_column, "no column 'file'");
    CHECK_ERR(ld_no_label_col, "no column 'grade' (label_column)");
    CHECK_ERR(ld_bad_label, "bad_label.csv:3: label '2' is not one of the 2 classes");
    CHECK_ERR(ld_dup, "1 duplicate image(s)");
    CHECK_ERR(ld_missing, "7 listed images are missing");
    CHECK_ERR(ld_missing, "m1.jpg, m2.jpg, m3.jpg, m4.jpg, m5.jpg)");
    CHECK_ERR(ld_no_csv, "nope.csv is missing");
    CHECK_ERR(ld_ambiguous, "found in both");
    CHECK_ERR(ld_no_dir, "2 image folder(s) missing");
    CHECK_ERR(ld_empty_class, "class '2' has no images");
    CHECK_ERR(ld_three_binary, "exactly 2 classes");
    CHECK_ERR(ld_multi_no_classes, "needs 'classes'");
    CHECK_ERR(ld_dup_class, "class 'a' is listed twice");
    CHECK_ERR(ld_few_fields, "short.csv:2: 1 fields, the task needs 2");
    CHECK_ERR(ld_no_root, "image root");
    CHECK_ERR(ld_not_json, "not valid JSON");
    /* TASK_SKIP_MISSING drops the missing rows and counts them */
    task t;
    sx_err err;
    int rc = load_json(TASK_JSON("\"type\": \"binary\", \"csv\": \"missing.csv\", \"image_column\": \"id\", \"label_column\": \"y\""),
                       g_root, TASK_SKIP_MISSING, &t, &err);
    CHECKF(rc == 0 && t.n == 2 && t.n_missing == 7, "%s", err.msg);
    task_free(&t);
    CHECK(t.n == 0 && t.samples == NULL);   /* task_free leaves an empty task */
}

/* Hostile CSVs fail with a message (or load), never crash or overrun. */
TEST(test_task_hostile_csv) {
    snprintf(g_root, sizeof g_root, "%s", root_dir("data"));
    touch(g_root, "img/a.jpg");
    touch(g_root, "img/b.jpg");
    char p[600];
    snprintf(p, sizeof p, "%s/d.csv", g_root);
    const char *json = TASK_JSON("\"type\": \"binary\", \"csv\": \"d.csv\", \"image_column\": \"id\", \"label_column\": \"y\"");
    task t;
    sx_err err;
    const struct { const char *text; size_t len; const char *needle; } cases[] = {
        {"id,y\n\"a.jpg,0\n", 0, "never closed"},
        {"id,y\n\"a.jpg\"x,0\n", 0, "text after a closing quote"},
        {"id,y\na.jpg,0\nb.jpg\0,1\n", 22, "NUL byte"},
        {"", 0, "empty (no header row)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tl_write_file(p, cases[i].text, cases[i].len ? cases[i].len : strlen(cases[i].text));
        CHECK(load_json(json, g_root, 0, &t, &err) != 0);
        CHECKF(strstr(err.msg, cases[i].needle), "case %zu: %s", i, err.msg);
    }
    /* a record longer than 1 MiB (a quoted field that never ends a line) */
    size_t big = ((size_t)1 << 20) + 100;
    char *buf = malloc(big + 16);
    memcpy(buf, "id,y\n\"", 6);
    memset(buf + 6, 'x', big);
    memcpy(buf + 6 + big, "\",0\n", 4);
    tl_write_file(p, buf, big + 10);
    CHECK(load_json(json, g_root, 0, &t, &err) != 0);
    CHECKF(strstr(err.msg, "record longer than"), "%s", err.msg);
    /* more than 4096 fields */
    size_t k = 0;
    k += (size_t)sprintf(buf + k, "id,y");
    for (int i = 0; i < 5000; i++) buf[k++] = ',';
    buf[k++] = '\n';
    tl_write_file(p, buf, k);
    CHECK(load_json(json, g_root, 0, &t, &err) != 0);
    CHECKF(strstr(err.msg, "more than 4096 fields"), "%s", err.msg);
    /* random bytes drawn from CSV-ish characters: must not crash */
    sx_rng r;
    rng_seed(&r, 99);
    const char alphabet[] = "ab.jpg,\"\r\n01 \t";
    for (int round = 0; round < 200; round++) {
        size_t n = rng_below(&r, 200);
        memcpy(buf, "id,y\n", 5);
        for (size_t i = 0; i < n; i++) buf[5 + i] = alphabet[rng_below(&r, sizeof alphabet - 1)];
        tl_write_file(p, buf, 5 + n);
        if (load_json(json, g_root, 0, &t, &err) == 0) task_free(&t);
        else CHECK(err.msg[0] != 0);
    }
    free(buf);
}

/* Every shipped task file is a valid spec: against an empty data root the
 * only complaint is the missing data. */
TEST(test_task_shipped_files) {
    DIR *d = opendir("tasks");
    CHECK(d != NULL);
    if (!d) return;
    struct dirent *e;
    int n = 0;
    char *empty = root_dir("empty");
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 6 || strcmp(e->d_name + l - 5, ".json") != 0) continue;
        char p[600];
        snprintf(p, sizeof p, "tasks/%s", e->d_name);
        char *text = tl_read_file(p, NULL);   /* multi-head layouts are checked in tests/adapt/test_heads.c */
        int multihead = text && strstr(text, "\"type\": \"multihead\"");
        free(text);
        if (multihead) continue;
        task t;
        sx_err err;
        CHECK(task_load(p, empty, &t, &err) != 0);
        CHECKF(strstr(err.msg, "image root") && strstr(err.msg, "is missing"), "%s: %s", p, err.msg);
        n++;
    }
    closedir(d);
    CHECKF(n >= 14, "%d task files", n);   /* 14 on branch ext; other branches may add more */
}

/* ---------------------------------------------------------- real data */

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int count_images(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (e->d_name[0] != '.' && l > 4 && (strcasecmp(e->d_name + l - 4, ".jpg") == 0 || strcasecmp(e->d_name + l - 4, ".png") == 0))
            n++;
    }
    closedir(d);
    return n;
}

TEST(test_task_real_fracatlas_knee) {
    const char *root = "../shared/data";
    struct stat st;
    if (stat(root, &st) != 0) TEST_SKIP("../shared/data is absent");
    /* expected counts straight from the CSV: rows, and the fractured / hardware columns */
    FILE *f = fopen("../shared/data/fracatlas/dataset.csv", "r");
    CHECK(f != NULL);
    if (!f) return;
    char line[1024];
    int col_frac = -1, col_hw = -1, rows = 0, frac = 0, hw = 0;
    if (fgets(line, sizeof line, f)) {
        int c = 0;
        for (char *tok = strtok(line, ",\r\n"); tok; tok = strtok(NULL, ",\r\n"), c++) {
            if (strcmp(tok, "fractured") == 0) col_frac = c;
            if (strcmp(tok, "hardware") == 0) col_hw = c;
        }
    }
    while (fgets(line, sizeof line, f)) {
        int c = 0;
        rows++;
        for (char *tok = strtok(line, ",\r\n"); tok; tok = strtok(NULL, ",\r\n"), c++) {
            if (c == col_frac) frac += atoi(tok) == 1;
            if (c == col_hw) hw += atoi(tok) == 1;
        }
    }
    fclose(f);
    CHECK(col_frac >= 0 && col_hw >= 0 && rows > 0);
    task t;
    sx_err err;
    int rc = task_load("tasks/fracatlas_fracture.json", root, &t, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (!rc) {
        size_t c[2];
        task_class_counts(&t, c);
        CHECKF(t.n == (size_t)rows && c[1] == (size_t)frac, "n %zu rows %d fractured %zu vs %d", t.n, rows, c[1], frac);
        /* IMG0000019.jpg is in Fractured */
        int found = 0;
        for (size_t i = 0; i < t.n; i++)
            found |= strstr(t.samples[i].path, "images/Fractured/IMG0000019.jpg") != NULL;
        CHECK(found);
        split s;
        CHECK(split_make(&t, 0.1, 5, 0, &s, &err) == 0);
        size_t nt;
        free(split_indices(&s, SPLIT_TEST, 0, &nt));
        CHECKF(nt >= (size_t)(rows / 10) - 1 && nt <= (size_t)(rows / 10) + 2, "test %zu of %d", nt, rows);
        split_free(&s);
    }
    task_free(&t);
    rc = task_load("tasks/fracatlas_hardware.json", root, &t, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (!rc) {
        size_t c[2];
        task_class_counts(&t, c);
        CHECK(t.n == (size_t)rows && c[1] == (size_t)hw);
    }
    task_free(&t);
    rc = task_load("tasks/knee_kl.json", root, &t, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (!rc) {
        size_t c[5], total = 0;
        task_class_counts(&t, c);
        CHECK(t.n_classes == 5 && t.type == TASK_ORDINAL);
        for (int k = 0; k < 5; k++) {
            char d1[256], d2[256];
            snprintf(d1, sizeof d1, "%s/knee-kl/train/%d", root, k);
            snprintf(d2, sizeof d2, "%s/knee-kl/val/%d", root, k);
            size_t want = (size_t)(count_images(d1) + count_images(d2));
            CHECKF(c[k] == want, "grade %d: %zu vs %zu on disk", k, c[k], want);
            total += want;
        }
        CHECK(t.n == total && total <= 6604);
        CHECK(task_patient_count(&t) < t.n);   /* both knees of a patient share an id */
        split s;
        CHECK(split_make(&t, 0.1, 5, 0, &s, &err) == 0);
        /* no patient on two sides: sort (patient, fold) pairs and compare neighbours */
        char **key = malloc(sizeof(char *) * t.n);
        for (size_t i = 0; i < t.n; i++) {
            key[i] = malloc(strlen(t.samples[i].patient) + 8);
            sprintf(key[i], "%s|%d", t.samples[i].patient, s.fold[i] + 1);
        }
        qsort(key, t.n, sizeof *key, cmp_str);
        int leak = 0;
        for (size_t i = 1; i < t.n; i++) {
            size_t a = strcspn(key[i], "|"), b = strcspn(key[i - 1], "|");
            leak += a == b && strncmp(key[i], key[i - 1], a) == 0 && strcmp(key[i], key[i - 1]) != 0;
        }
        for (size_t i = 0; i < t.n; i++) free(key[i]);
        free(key);
        CHECK(leak == 0);
        size_t nt;
        free(split_indices(&s, SPLIT_TEST, 0, &nt));
        CHECKF(nt >= t.n * 9 / 100 && nt <= t.n * 11 / 100, "test %zu of %zu", nt, t.n);
        split_free(&s);
    }
    task_free(&t);
}

/* ------------------------------------------------------- strict JSON */

static int ld_trailing(task *t, sx_err *e) {
    return load_json("{\"name\": \"v\", \"type\": \"binary\", \"image_root\": \"img\", \"class_folders\": [\"a\", \"b\"]} x",
                     g_root, 0, t, e);
}
static int ld_two_values(task *t, sx_err *e) {
    return load_json("{\"name\": \"v\", \"type\": \"binary\", \"image_root\": \"img\", \"class_folders\": [\"a\", \"b\"]}\n{}",
                     g_root, 0, t, e);
}
static int ld_dup_key(task *t, sx_err *e) {
    return load_json("{\"name\": \"v\", \"type\": \"binary\", \"image_root\": \"img\", \"type\": \"multiclass\", "
                     "\"class_folders\": [\"a\", \"b\"]}", g_root, 0, t, e);
}
static int ld_dup_nested(task *t, sx_err *e) {
    return load_json("{\"name\": \"v\", \"type\": \"binary\", \"image_root\": \"img\", \"csv\": \"d.csv\", "
                     "\"image_column\": \"id\", \"label_column\": \"y\", \"label_map\": {\"a\": \"0\", \"a\": \"1\"}}",
                     g_root, 0, t, e);
}

TEST(test_task_json_strict) {
    snprintf(g_root, sizeof g_root, "%s", root_dir("strict"));
    touch(g_root, "img/a/x.png");
    touch(g_root, "img/b/y.png");
    char p[600];
    snprintf(p, sizeof p, "%s/d.csv", g_root);
    tl_write_text(p, "id,y\na/x.png,a\nb/y.png,a\n");
    CHECK_ERR(ld_trailing, "not valid JSON");
    CHECK_ERR(ld_two_values, "line 2");
    CHECK_ERR(ld_dup_key, "key \"type\" appears twice");
    CHECK_ERR(ld_dup_nested, "key \"a\" appears twice");
    /* a NUL byte hides garbage from a NUL-terminated parser */
    snprintf(p, sizeof p, "%s/nul.json", tl_tmpdir());
    static const char nul[] = "{\"name\": \"v\", \"type\": \"binary\", \"image_root\": \"img\", "
                              "\"class_folders\": [\"a\", \"b\"]}\0garbage";
    tl_write_file(p, nul, sizeof nul - 1);
    task t;
    sx_err e = {{0}};
    CHECK(task_load(p, g_root, &t, &e) != 0);
    CHECKF(strstr(e.msg, "NUL") != NULL, "%s", e.msg);
    task_free(&t);
    /* the same task, well formed, loads; trailing blanks are fine */
    CHECKF(load_json("{\"name\": \"v\", \"type\": \"binary\", \"image_root\": \"img\", "
                     "\"class_folders\": [\"a\", \"b\"]}\n \n", g_root, 0, &t, &e) == 0, "%s", e.msg);
    CHECK(t.n == 2);
    task_free(&t);
}
