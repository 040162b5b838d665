/* test_multitask.c: multi-head tasks (data/multitask.c) on synthetic
 * sources: merging images listed by several sources, masks, boxes, foot
 * grouping by the name before "_JPG", strata and the split; the refusals;
 * a classifier with groups (save/load, strict config, gradients of the
 * masked loss); per-group metrics skipping masked entries; and the real
 * open-data task when ../shared/data is present. */
#include "adapt/evaluate_heads.h"
#include "data/multitask.h"
#include "eval/metrics.h"
#include "io/image.h"
#include "nn/classifier.h"
#include "core/rng.h"
#include "testlib.h"
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int write_png(const char *path, int bright) {
    uint8_t px[40 * 40];
    for (int i = 0; i < 40 * 40; i++) px[i] = (uint8_t)(20 + (i * 7) % 11 + (bright && i % 40 > 20 ? 150 : 0));
    sx_err e;
    return png_write_u8(path, px, 40, 40, 1, &e);
}

static const char *LAYOUT =
    "\"outputs\": [\"abnormal\", \"a\", \"b\", \"c\", \"flatfoot\"],"
    "\"groups\": [{\"name\": \"abnormal\", \"kind\": \"sigmoid\", \"outputs\": [\"abnormal\"]},"
    "  {\"name\": \"part\", \"kind\": \"softmax\", \"outputs\": [\"a\", \"b\", \"c\"]},"
    "  {\"name\": \"flatfoot\", \"kind\": \"sigmoid\", \"outputs\": [\"flatfoot\"]}],";

static const char *SRC_ABN =
    "{\"group\": \"abnormal\", \"output\": \"abnormal\", \"boxes\": {\"yolo_dir\": \"boxes\"},"
    " \"task\": {\"name\": \"abn\", \"type\": \"binary\", \"image_root\": \"img\", \"csv\": \"labels.csv\","
    " \"image_column\": \"image\", \"label_column\": \"abn\"}}";
static const char *SRC_PART =
    "{\"group\": \"part\", \"class_outputs\": {\"x\": \"a\", \"y\": \"b\", \"z\": \"c\"},"
    " \"task\": {\"name\": \"part\", \"type\": \"multiclass\", \"image_root\": \"img\", \"csv\": \"labels.csv\","
    " \"image_column\": \"image\", \"label_column\": \"part\", \"classes\": [\"x\", \"y\", \"z\"],"
    " \"invalid_labels\": \"skip\"}}";
static const char *SRC_FEET =
    "{\"group\": \"flatfoot\", \"output\": \"flatfoot\","
    " \"task\": {\"name\": \"ff\", \"type\": \"binary\", \"image_root\": \"feet\","
    " \"class_folders\": [\"normal\", \"flat\"],"
    " \"patient_from\": {\"name_before\": \"_JPG\"}}}";

/* dir: img/a0..a5.png + labels.csv, boxes/, feet/{normal,flat}/ with augmented copies. */
static void make_sources(void) {
    char p[1200];
    snprintf(p, sizeof p, "mkdir -p '%s/img' '%s/boxes' '%s/feet/normal' '%s/feet/flat'", tl_tmpdir(), tl_tmpdir(),
             tl_tmpdir(), tl_tmpdir());
    CHECK(system(p) == 0);
    for (int k = 0; k < 6; k++) {
        snprintf(p, sizeof p, "img/a%d.png", k);
        CHECK(write_png(tl_path(p), k % 2 == 0) == 0);
    }
    CHECK(tl_write_text(tl_path("labels.csv"), "image,abn,part\na0.png,1,x\na1.png,0,y\na2.png,1,z\na3.png,0,x\n"
                                               "a4.png,1,q\na5.png,0,y\n") == 0);
    CHECK(tl_write_text(tl_path("boxes/a0.txt"), "0 0.5 0.5 0.2 0.4\n0 0.25 0.25 0.1 0.1\n") == 0);
    CHECK(tl_write_text(tl_path("boxes/a1.txt"), "") == 0);
    const char *feet[] = {"normal/7L_JPG.rf.1.png", "normal/7L_JPG.rf.2.png", "normal/8R_JPG.rf.1.png",
                          "flat/9L_JPG.rf.1.png",   "flat/9L_JPG.rf.2.png",   "flat/10R.png"};
    for (int k = 0; k < 6; k++) {
        snprintf(p, sizeof p, "feet/%s", feet[k]);
        CHECK(write_png(tl_path(p), k >= 3) == 0);
    }
}

static const char *task_file(const char *name, const char *sources) {
    char *text = malloc(8192);
    snprintf(text, 8192, "{\"name\": \"mt\", \"type\": \"multihead\", %s \"sources\": [%s]}", LAYOUT, sources);
    const char *path = tl_path(name);
    CHECK(tl_write_text(path, text) == 0);
    free(text);
    return path;
}

static long find(const multitask *mt, const char *suffix) {
    size_t ls = strlen(suffix);
    for (size_t i = 0; i < mt->n; i++) {
        const char *p = mt->view.samples[i].path;
        size_t lp = strlen(p);
        if (lp >= ls && !strcmp(p + lp - ls, suffix)) return (long)i;
    }
    return -1;
}

TEST(test_multitask_load) {
    make_sources();
    char src[4096];
    snprintf(src, sizeof src, "%s, %s, %s", SRC_ABN, SRC_PART, SRC_FEET);
    const char *tf = task_file("mt.json", src);
    CHECK(multitask_is(tf) == 1);
    CHECK(multitask_is(tl_path("labels.csv")) == 0);
    multitask mt;
    sx_err err;
    CHECKF(multitask_load(tf, tl_tmpdir(), 0, &mt, &err) == 0, "%s", err.msg);
    if (tl_failures) return;
    CHECK(mt.n == 12);   /* 6 images listed by two sources each, 6 feet */
    CHECK(mt.L.n_out == 5 && mt.L.n_groups == 3);
    long a0 = find(&mt, "/a0.png"), a1 = find(&mt, "/a1.png"), a4 = find(&mt, "/a4.png"), a2 = find(&mt, "/a2.png");
    CHECK(a0 >= 0 && a1 >= 0 && a4 >= 0 && a2 >= 0);
    const int K = 5;
    /* a0: abnormal 1 (sigmoid), part x -> a (softmax: all three known), flatfoot masked */
    const float *t0 = mt.targets + a0 * K;
    const uint8_t *k0 = mt.known + a0 * K;
    CHECK(k0[0] && t0[0] == 1.0f);
    CHECK(k0[1] && k0[2] && k0[3] && t0[1] == 1.0f && t0[2] == 0.0f && t0[3] == 0.0f);
    CHECK(!k0[4]);
    CHECK(mt.known[a1 * K] && mt.targets[a1 * K] == 0.0f && mt.targets[a1 * K + 2] == 1.0f);
    CHECK(mt.targets[a2 * K + 3] == 1.0f);
    /* a4's part 'q' is not a class: skipped, so its part group stays masked */
    CHECK(mt.known[a4 * K] && !mt.known[a4 * K + 1] && !mt.known[a4 * K + 2] && !mt.known[a4 * K + 3]);
    /* boxes: two for a0 (YOLO -> pixels), none for a1 (empty file) and a2 (no file) */
    CHECK(mt.nbox[a0] == 2 && mt.nbox[a1] == 0 && mt.nbox[a2] == 0);
    pix_box bx[4];
    CHECK(multitask_boxes_px(&mt, (size_t)a0, 100, 50, bx, 4) == 2);
    CHECK_NEAR(bx[0].x0, 40, 1e-3);
    CHECK_NEAR(bx[0].x1, 60, 1e-3);
    CHECK_NEAR(bx[0].y0, 15, 1e-3);
    CHECK_NEAR(bx[0].y1, 35, 1e-3);
    /* feet: only flatfoot known; copies of one foot share its patient */
    long f1 = find(&mt, "7L_JPG.rf.1.png"), f2 = find(&mt, "7L_JPG.rf.2.png"), f3 = find(&mt, "8R_JPG.rf.1.png");
    long f4 = find(&mt, "9L_JPG.rf.2.png"), f6 = find(&mt, "10R.png");
    CHECK(f1 >= 0 && f2 >= 0 && f3 >= 0 && f4 >= 0 && f6 >= 0);
    if (tl_failures) { multitask_free(&mt); return; }
    CHECK(mt.known[f4 * K + 4] && mt.targets[f4 * K + 4] == 1.0f && !mt.known[f4 * K]);
    CHECK(mt.known[f1 * K + 4] && mt.targets[f1 * K + 4] == 0.0f);
    CHECK(!strcmp(mt.view.samples[f1].patient, mt.view.samples[f2].patient));
    CHECK(strcmp(mt.view.samples[f1].patient, mt.view.samples[f3].patient) != 0);
    CHECKF(strstr(mt.view.samples[f6].patient, "10R") != NULL, "%s", mt.view.samples[f6].patient);
    CHECK(mt.view.has_patients == 1);
    /* no group is labelled by every source: strata are (first source, its class) */
    CHECK(mt.view.n_classes == 4);
    CHECK(!strcmp(mt.view.class_names[mt.view.samples[a0].label], "abn:1"));
    CHECK(!strcmp(mt.view.class_names[mt.view.samples[f4].label], "ff:1"));
    /* the split keeps a foot's copies together */
    split sp;
    int sr = split_make(&mt.view, 0.0, 2, 3, &sp, &err);
    CHECKF(sr == 0, "%s", err.msg);
    if (sr == 0) {
        CHECK(sp.fold[f1] == sp.fold[f2]);
        CHECK(sp.fold[find(&mt, "9L_JPG.rf.1.png")] == sp.fold[f4]);
        split_free(&sp);
    }
    multitask_free(&mt);
}

TEST(test_multitask_refusals) {
    make_sources();
    multitask mt;
    sx_err err;
    struct { const char *src, *want; } cases[] = {
        {"{\"group\": \"abnormal\", \"output\": \"abnormal\", \"colour\": 1, \"task\": {}}", "unknown key 'colour'"},
        {"{\"group\": \"nope\", \"output\": \"abnormal\", \"task\": {}}", "\"group\""},
        {"{\"group\": \"part\", \"class_outputs\": {\"x\": \"a\", \"y\": \"b\"},"
         " \"task\": {\"name\": \"part\", \"type\": \"multiclass\", \"image_root\": \"img\", \"csv\": \"labels.csv\","
         " \"image_column\": \"image\", \"label_column\": \"part\", \"classes\": [\"x\", \"y\", \"z\"],"
         " \"invalid_labels\": \"skip\"}}", "misses class 'z'"},
        {"{\"group\": \"part\", \"class_outputs\": {\"x\": \"a\", \"y\": \"b\", \"z\": \"abnormal\"},"
         " \"task\": {\"name\": \"part\", \"type\": \"multiclass\", \"image_root\": \"img\", \"csv\": \"labels.csv\","
         " \"image_column\": \"image\", \"label_column\": \"part\", \"classes\": [\"x\", \"y\", \"z\"],"
         " \"invalid_labels\": \"skip\"}}", "not an output of group 'part'"},
        {"{\"group\": \"abnormal\", \"class_outputs\": {\"0\": \"abnormal\"}, \"task\": {\"name\": \"abn\", \"type\": "
         "\"binary\", \"image_root\": \"img\", \"csv\": \"labels.csv\", \"image_column\": \"image\", \"label_column\": "
         "\"abn\"}}", "sigmoid group needs \"output\""},
        {"{\"group\": \"abnormal\", \"output\": \"abnormal\", \"boxes\": {\"yolo_dir\": \"nowhere\"}, \"task\": {}}",
         "no box folder"},
    };
    for (size_t q = 0; q < sizeof cases / sizeof *cases; q++) {
        const char *tf = task_file("bad.json", cases[q].src);
        CHECKF(multitask_load(tf, tl_tmpdir(), 0, &mt, &err) != 0, "case %zu loaded", q);
        CHECKF(strstr(err.msg, cases[q].want) != NULL, "case %zu: %s", q, err.msg);
        CHECK(mt.n == 0 && mt.targets == NULL);
    }
    /* two sources giving the same image different answers in one group */
    char src[4096];
    const char *flipped =
        "{\"group\": \"abnormal\", \"output\": \"abnormal\", \"task\": {\"name\": \"abn2\", \"type\": \"binary\","
        " \"image_root\": \"img\", \"csv\": \"labels.csv\", \"image_column\": \"image\", \"label_column\": \"abn\","
        " \"label_map\": {\"0\": \"1\", \"1\": \"0\"}}}";
    snprintf(src, sizeof src, "%s, %s", SRC_ABN, flipped);
    CHECK(multitask_load(task_file("conflict.json", src), tl_tmpdir(), 0, &mt, &err) != 0);
    CHECKF(strstr(err.msg, "different 'abnormal'") != NULL, "%s", err.msg);
    /* a missing "sources", an unknown top-level key, a duplicate key (strict JSON) */
    CHECK(tl_write_text(tl_path("t1.json"), "{\"name\": \"x\", \"type\": \"multihead\", \"outputs\": [\"a\"], "
                                            "\"groups\": [{\"name\": \"a\", \"kind\": \"sigmoid\", \"outputs\": [\"a\"]}]}") == 0);
    CHECK(multitask_load(tl_path("t1.json"), tl_tmpdir(), 0, &mt, &err) != 0 && strstr(err.msg, "sources"));
    CHECK(tl_write_text(tl_path("t2.json"), "{\"name\": \"x\", \"name\": \"y\", \"type\": \"multihead\"}") == 0);
    CHECK(multitask_load(tl_path("t2.json"), tl_tmpdir(), 0, &mt, &err) != 0);
    CHECK(multitask_is(tl_path("t2.json")) == 0);
}

/* ------------------------------------------------------------------------ */

static void layout_of(head_layout *L) {
    char text[2048];
    snprintf(text, sizeof text, "{%s \"x\": 0}", LAYOUT);
    cJSON *o = cJSON_Parse(text);
    sx_err err;
    CHECKF(heads_from_json(o, "test", L, &err) == 0, "%s", err.msg);
    cJSON_Delete(o);
}

TEST(test_multitask_classifier_groups) {
    head_layout L;
    layout_of(&L);
    mae_config cfg = tl_toy_config(16);
    classifier c, d;
    sx_err err;
    CHECKF(classifier_create_heads(&c, NULL, &cfg, &L, 3, &err) == 0, "%s", err.msg);
    if (tl_failures) { heads_free(&L); return; }
    CHECK(c.n_out == 5 && c.heads && c.heads->n_groups == 3);
    for (size_t i = 0; i < (size_t)c.n_out * cfg.hidden_size; i++) c.head_w[i] *= 20.0f;
    int B = 3, S = cfg.image_size, K = 5;
    float *px = malloc(sizeof(float) * B * 3 * S * S);
    sx_rng r;
    rng_seed(&r, 4);
    for (int i = 0; i < B * 3 * S * S; i++) px[i] = rng_normal(&r);
    CHECK(classifier_forward(&c, px, B, &err) == 0);
    float z[15];
    memcpy(z, c.logits, sizeof z);
    const char *dir = tl_path("cls");
    CHECKF(classifier_save(&c, dir, "mt", &err) == 0, "%s", err.msg);
    char *cfgtext = tl_read_file(tl_path("cls/config.json"), NULL);
    CHECK(cfgtext && strstr(cfgtext, "\"groups\"") && strstr(cfgtext, "\"multihead\"") &&
          strstr(cfgtext, "ViTForImageClassification"));
    CHECKF(classifier_load(&d, dir, &err) == 0, "%s", err.msg);
    if (!tl_failures) {
        CHECK(d.heads && d.n_out == 5 && d.heads->n_groups == 3 && !strcmp(d.heads->groups[1].name, "part"));
        CHECK(d.heads->groups[1].kind == HEAD_SOFTMAX && d.heads->groups[1].n == 3);
        CHECK(classifier_forward(&d, px, B, &err) == 0);
        for (int q = 0; q < B * K; q++) CHECK_NEAR(d.logits[q], z[q], 1e-5);
        double prob[15];
        classifier_outputs(&d, prob, NULL);
        for (int b = 0; b < B; b++) {   /* softmax within the part group, sigmoid elsewhere */
            CHECK_NEAR(prob[b * K + 1] + prob[b * K + 2] + prob[b * K + 3], 1.0, 1e-6);
            CHECK_NEAR(prob[b * K], 1.0 / (1.0 + exp(-(double)z[b * K])), 1e-6);
        }
        classifier_free(&d);
    }
    /* the config is read strictly: a duplicate key is refused */
    if (cfgtext) {
        char *dup = malloc(strlen(cfgtext) + 64);
        sprintf(dup, "{\"hidden_size\": 16,%s", strchr(cfgtext, '{') + 1);
        CHECK(tl_write_text(tl_path("cls/config.json"), dup) == 0);
        CHECK(classifier_load(&d, dir, &err) != 0);
        CHECKF(strstr(err.msg, "duplicate") || strstr(err.msg, "twice"), "%s", err.msg);
        free(dup);
    }
    free(cfgtext);
    /* gradients of the masked loss reach the head: central differences on head weights */
    float tg[15] = {1, 0, 1, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0};
    uint8_t kn[15] = {1, 1, 1, 1, 0, 0, 0, 0, 0, 1, 1, 1, 1, 0, 1};
    CHECK(classifier_forward(&c, px, B, &err) == 0);
    classifier_zero_grad(&c);
    double l0 = classifier_heads_loss(&c, tg, kn, 0.5f);
    CHECK_NEAR(l0, heads_loss(c.heads, c.logits, tg, kn, B, NULL), 1e-9);
    for (int t = 0; t < 4; t++) {
        size_t at = (size_t)(t * 37) % ((size_t)K * cfg.hidden_size);
        float keep = c.head_w[at], h = 1e-2f, g = c.ghead_w[at];
        double l[2];
        for (int s = 0; s < 2; s++) {
            c.head_w[at] = keep + (s ? -h : h);
            classifier_forward(&c, px, B, &err);
            l[s] = classifier_heads_loss(&c, tg, kn, 0.0f);
        }
        c.head_w[at] = keep;
        CHECK_NEAR(g, 0.5 * (l[0] - l[1]) / (2 * h), 2e-3 + 2e-2 * fabs(g));
    }
    free(px);
    classifier_free(&c);
    heads_free(&L);
}

TEST(test_multitask_metrics_skip_masked) {
    head_layout L;
    layout_of(&L);
    enum { N = 8, K = 5 };
    double prob[N * K];
    float tg[N * K] = {0};
    uint8_t kn[N * K] = {0};
    sx_rng r;
    rng_seed(&r, 11);
    for (int i = 0; i < N * K; i++) prob[i] = rng_uniform(&r);
    double sc[N];
    int pos[N];
    size_t m = 0;
    for (int i = 0; i < N; i++) {
        if (i % 3 == 2) { prob[i * K] = i % 2 ? 1.0 : 0.0; continue; }   /* masked: adversarial values */
        kn[i * K] = 1;
        tg[i * K] = (float)(i % 2);
        sc[m] = prob[i * K];
        pos[m++] = i % 2;
    }
    for (int i = 0; i < N; i++)   /* part group: rows 0..4 known, answer i % 3 */
        for (int q = 1; q <= 3; q++) {
            kn[i * K + q] = i < 5 || q != 2;   /* rows 5..7 have one entry masked: the group is skipped there */
            tg[i * K + q] = (q - 1) == i % 3;
        }
    cJSON *mj = evh_metrics(&L, prob, tg, kn, N, 200, 1);
    const cJSON *ab = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(
                          cJSON_GetObjectItem(mj, "groups"), "abnormal"), "outputs"), "abnormal"), "auroc");
    CHECK(cJSON_IsNumber(ab));
    if (cJSON_IsNumber(ab)) CHECK_NEAR(ab->valuedouble, metric_auroc(sc, pos, m), 1e-12);
    const cJSON *part = cJSON_GetObjectItem(cJSON_GetObjectItem(mj, "groups"), "part");
    CHECK(cJSON_GetObjectItem(part, "n")->valuedouble == 5);
    const cJSON *ff = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(mj, "groups"),
                                                                                  "flatfoot"), "outputs"), "flatfoot");
    CHECK(cJSON_GetObjectItem(ff, "n")->valuedouble == 0 && cJSON_IsNull(cJSON_GetObjectItem(ff, "auroc")));
    /* the headline: the mean of the defined AUROCs (abnormal, part) */
    double gp[15];
    int lab[5];
    for (int i = 0; i < 5; i++) {
        double s = prob[i * K + 1] + prob[i * K + 2] + prob[i * K + 3];
        for (int q = 0; q < 3; q++) gp[i * 3 + q] = prob[i * K + 1 + q] / s;
        lab[i] = i % 3;
    }
    double want = 0.5 * (metric_auroc(sc, pos, m) + metric_auroc_prob(gp, 3, lab, 5, NULL));
    CHECK_NEAR(evh_mean_auroc(&L, prob, tg, kn, N), want, 1e-12);
    CHECK_NEAR(cJSON_GetObjectItem(mj, "mean_auroc")->valuedouble, want, 1e-12);
    cJSON_Delete(mj);
    heads_free(&L);
}

/* The real open-data task (skipped without ../shared/data). */
TEST(test_multitask_open_data) {
    if (access("../shared/data/fracatlas/dataset.csv", R_OK) || access("../shared/data/flatfoot", R_OK) ||
        access("../shared/data/knee-kl", R_OK))
        TEST_SKIP("../shared/data absent");
    multitask mt;
    sx_err err;
    CHECKF(multitask_load("tasks/open_multihead.json", "../shared/data", 0, &mt, &err) == 0, "%s", err.msg);
    if (tl_failures) return;
    CHECK(mt.n == 3343 + 569 + 6604);
    int K = mt.L.n_out, jab = heads_output_index(&mt.L, "abnormal"), jff = heads_output_index(&mt.L, "flatfoot");
    int jhand = heads_output_index(&mt.L, "hand");
    size_t n_ab = 0, n_pos = 0, n_boxed = 0, n_ff = 0, n_part = 0;
    for (size_t i = 0; i < mt.n; i++) {
        if (mt.known[i * K + jab]) { n_ab++; n_pos += mt.targets[i * K + jab] > 0.5f; }
        n_boxed += mt.nbox[i] > 0;
        n_ff += mt.known[i * K + jff];
        n_part += mt.known[i * K + jhand];
    }
    CHECK(n_ab == 3343);
    CHECKF(n_pos > 500 && n_pos < 800, "%zu fractured", n_pos);
    /* (one image in Fractured/ has a box but fractured=0 in the CSV, the label source) */
    CHECKF(n_boxed > 500 && n_boxed <= n_pos + 5, "%zu boxed of %zu fractured", n_boxed, n_pos);
    CHECK(n_ff == 569);
    CHECKF(n_part > 2900 && n_part < 3343, "%zu with a body part (the 'mixed' rows are masked)", n_part);
    split sp;
    int sr = split_make(&mt.view, 0.1, 5, 0, &sp, &err);
    CHECKF(sr == 0, "%s", err.msg);
    if (sr == 0) {   /* every foot's copies on one side */
        size_t bad = 0;
        for (size_t i = 0; i < mt.n; i++)
            for (size_t j = i + 1; j < mt.n && mt.known[i * K + jff]; j++)
                if (mt.known[j * K + jff] && !strcmp(mt.view.samples[i].patient, mt.view.samples[j].patient))
                    bad += sp.fold[i] != sp.fold[j];
        CHECK(bad == 0);
        CHECKF(task_patient_count(&mt.view) < mt.n - 200, "%zu patients", task_patient_count(&mt.view));
        split_free(&sp);
    }
    multitask_free(&mt);
}
