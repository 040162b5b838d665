/* test_heads.c: head layouts (parse, checks, write-back, the shipped task
 * layouts) and the masked multi-head loss against the PyTorch twin
 * (tests/fixtures/heads/heads.json, made by tools/mae_twin.py heads), with
 * a finite-difference check of its gradient. */
#include "adapt/heads.h"
#include "core/rng.h"
#include "data/task.h"
#include "testlib.h"
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define FIXTURE "tests/fixtures/heads/heads.json"

static cJSON *read_json(const char *path) {
    char *t = tl_read_file(path, NULL);
    cJSON *r = t ? cJSON_Parse(t) : NULL;
    free(t);
    return r;
}

static double *num_array(const cJSON *a, int n) {
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != n) return NULL;
    double *v = malloc(sizeof(double) * (size_t)n);
    int i = 0;
    for (const cJSON *x = a->child; x; x = x->next) v[i++] = x->valuedouble;
    return v;
}

TEST(test_heads_loss_matches_twin) {
    cJSON *r = read_json(FIXTURE);
    CHECK(r != NULL);
    if (!r) return;
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(r, "cases");
    CHECK(cJSON_GetArraySize(cases) == 3);
    for (const cJSON *c = cases ? cases->child : NULL; c; c = c->next) {
        sx_err err;
        head_layout L;
        const char *name = cJSON_GetObjectItemCaseSensitive(c, "name")->valuestring;
        CHECKF(heads_from_json(c, name, &L, &err) == 0, "%s", err.msg);
        int B = cJSON_GetObjectItemCaseSensitive(c, "B")->valueint, n = L.n_out, N = B * n;
        double *z = num_array(cJSON_GetObjectItemCaseSensitive(c, "logits"), N);
        double *t = num_array(cJSON_GetObjectItemCaseSensitive(c, "targets"), N);
        double *k = num_array(cJSON_GetObjectItemCaseSensitive(c, "known"), N);
        double *g = num_array(cJSON_GetObjectItemCaseSensitive(c, "grad"), N);
        CHECK(z && t && k && g);
        if (z && t && k && g) {
            float *zf = malloc(sizeof(float) * N), *tf = malloc(sizeof(float) * N), *gf = malloc(sizeof(float) * N);
            uint8_t *kk = malloc((size_t)N);
            int masked_rows = 0, empty_rows = 0;
            for (int i = 0; i < N; i++) { zf[i] = (float)z[i]; tf[i] = (float)t[i]; kk[i] = k[i] != 0; }
            for (int i = 0; i < N; i++) CHECK((double)zf[i] == z[i] && (double)tf[i] == t[i]);   /* exact in float */
            for (int b = 0; b < B; b++) {
                int kn = 0;
                for (int j = 0; j < n; j++) kn += kk[b * n + j];
                empty_rows += kn == 0;
                masked_rows += kn > 0 && kn < n;
            }
            CHECK(empty_rows >= 1 && masked_rows >= 1);   /* the fixture has what it claims */
            double loss = heads_loss(&L, zf, tf, kk, B, gf);
            double want = cJSON_GetObjectItemCaseSensitive(c, "loss")->valuedouble;
            CHECK_NEAR(loss, want, 1e-6);
            CHECK(loss > 0);
            double worst = 0;
            for (int i = 0; i < N; i++) worst = fmax(worst, fabs(gf[i] - g[i]));
            CHECKF(worst <= 1e-6, "%s: worst gradient error %.3g", name, worst);
            for (int j = 0; j < n; j++) CHECK(gf[1 * n + j] == 0);   /* row 1 knows nothing */
            /* without the gradient the loss is the same */
            CHECK(heads_loss(&L, zf, tf, kk, B, NULL) == loss);
            free(zf); free(tf); free(gf); free(kk);
        }
        free(z); free(t); free(k); free(g);
        heads_free(&L);
    }
    cJSON_Delete(r);
}

TEST(test_heads_gradient_finite_difference) {
    sx_err err;
    head_layout L;
    CHECKF(heads_load("tasks/skelex_tumor_heads.json", &L, &err) == 0, "%s", err.msg);
    if (!L.n_out) return;
    enum { B = 6 };
    int n = L.n_out, N = B * n;
    float *z = malloc(sizeof(float) * N), *t = calloc((size_t)N, sizeof(float)), *g = malloc(sizeof(float) * N);
    uint8_t *k = malloc((size_t)N);
    sx_rng r;
    rng_seed(&r, 11);
    /* logits on a 1/64 grid so z +- 2^-10 is exact in float */
    for (int i = 0; i < N; i++) z[i] = (float)((int)(rng_normal(&r) * 128) / 64.0);
    for (int b = 0; b < B; b++)
        for (int gi = 0; gi < L.n_groups; gi++) {
            const head_group *hg = &L.groups[gi];
            int masked = rng_uniform(&r) < 0.3f;
            int hot = (int)rng_below(&r, (uint32_t)hg->n);
            for (int i = 0; i < hg->n; i++) {
                int o = b * n + hg->outputs[i];
                k[o] = !masked;
                t[o] = hg->kind == HEAD_SIGMOID ? (float)rng_below(&r, 2) : (float)(i == hot);
            }
        }
    double loss = heads_loss(&L, z, t, k, B, g), eps = 1.0 / 1024, worst = 0;
    CHECK(isfinite(loss) && loss > 0);
    for (int i = 0; i < N; i++) {
        float keep = z[i];
        z[i] = (float)(keep + eps);
        double up = heads_loss(&L, z, t, k, B, NULL);
        z[i] = (float)(keep - eps);
        double dn = heads_loss(&L, z, t, k, B, NULL);
        z[i] = keep;
        double fd = (up - dn) / (2 * eps);
        worst = fmax(worst, fabs(fd - g[i]));
        if (!k[i]) CHECK(g[i] == 0 && fd == 0);
    }
    CHECKF(worst < 2e-6, "worst |fd - grad| %.3g", worst);
    free(z); free(t); free(g); free(k);
    heads_free(&L);
}

TEST(test_heads_loss_by_hand) {
    /* one sigmoid output and a 2-way softmax, two rows; row 1 has the softmax masked */
    const char *js = "{\"outputs\":[\"a\",\"x\",\"y\"],\"groups\":[{\"name\":\"a\",\"kind\":\"sigmoid\",\"outputs\":[\"a\"]},"
                     "{\"name\":\"xy\",\"kind\":\"softmax\",\"outputs\":[\"y\",\"x\"]}]}";
    cJSON *o = cJSON_Parse(js);
    sx_err err;
    head_layout L;
    CHECKF(heads_from_json(o, "inline", &L, &err) == 0, "%s", err.msg);
    cJSON_Delete(o);
    float z[6] = {0.5f, 1, -1, -2, 3, 0}, t[6] = {1, 0, 1, 0, 1, 0}, g[6];
    uint8_t k[6] = {1, 1, 1, 1, 1, 0};
    double bce0 = log1p(exp(-0.5)), bce1 = log1p(exp(-2.0));   /* t=1: log(1+e^-z); t=0: log(1+e^z) */
    double ce0 = -(-1 - log(exp(1.0) + exp(-1.0)));
    CHECK_NEAR(heads_loss(&L, z, t, k, 2, g), (bce0 + bce1) / 2 + ce0, 1e-12);
    CHECK_NEAR(g[0], (1 / (1 + exp(-0.5)) - 1) / 2, 1e-7);
    CHECK_NEAR(g[1], exp(1.0) / (exp(1.0) + exp(-1.0)), 1e-7);
    CHECK(g[4] == 0 && g[5] == 0);
    /* nothing known at all: 0, no gradient */
    memset(k, 0, sizeof k);
    CHECK(heads_loss(&L, z, t, k, 2, g) == 0);
    for (int i = 0; i < 6; i++) CHECK(g[i] == 0);
    /* labels recorded into a row: the softmax group becomes known whole */
    float tr[3] = {9, 9, 9};
    uint8_t kr[3] = {0, 0, 0};
    CHECK(heads_mark(&L, 1, 1, 1, tr, kr, &err) == 0 && tr[1] == 1 && tr[2] == 0 && kr[1] && kr[2] && !kr[0] && tr[0] == 9);
    CHECK(heads_mark(&L, 0, 0, 0.25f, tr, kr, &err) == 0 && tr[0] == 0.25f && kr[0]);
    CHECK(heads_mark(&L, 0, 1, 1, tr, kr, &err) == -1 && strstr(err.msg, "not in group"));
    CHECK(heads_mark(&L, 0, 0, 2, tr, kr, &err) == -1 && strstr(err.msg, "[0, 1]"));
    /* probabilities: sigmoid, and softmax within the group */
    float p[6];
    heads_probs(&L, z, 2, p);
    CHECK_NEAR(p[0], 1 / (1 + exp(-0.5)), 1e-7);
    CHECK_NEAR(p[1] + p[2], 1, 1e-7);
    CHECK_NEAR(p[4] + p[5], 1, 1e-7);
    CHECK(p[1] > p[2]);
    heads_probs(&L, z, 2, z);   /* in place */
    for (int i = 0; i < 6; i++) CHECK(z[i] == p[i]);
    heads_free(&L);
}

static int parse_fails(const char *js, const char *needle) {
    cJSON *o = cJSON_Parse(js);
    sx_err err = {{0}};
    head_layout L;
    int rc = heads_from_json(o, "cfg", &L, &err);
    cJSON_Delete(o);
    int ok = rc == -1 && L.n_out == 0 && strstr(err.msg, needle) != NULL;
    if (!ok) fprintf(stderr, "    expected failure with \"%s\", got rc %d: %s\n", needle, rc, err.msg);
    if (rc == 0) heads_free(&L);
    return ok;
}

TEST(test_heads_layout_checks) {
#define ID2 "\"id2label\":{\"0\":\"a\",\"1\":\"b\",\"2\":\"c\"},"
    CHECK(parse_fails("{" ID2 "\"groups\":[{\"name\":\"g\",\"kind\":\"softmax\",\"outputs\":[\"a\",\"b\"]}]}", "\"c\" is in no group"));
    CHECK(parse_fails("{" ID2 "\"groups\":[{\"name\":\"g\",\"kind\":\"softmax\",\"outputs\":[\"a\",\"b\",\"c\"]},"
                      "{\"name\":\"h\",\"kind\":\"sigmoid\",\"outputs\":[\"c\"]}]}", "in two groups"));
    CHECK(parse_fails("{" ID2 "\"groups\":[{\"name\":\"g\",\"kind\":\"softmax\",\"outputs\":[\"a\",\"b\",\"d\"]}]}", "d is not in id2label"));
    CHECK(parse_fails("{" ID2 "\"groups\":[{\"name\":\"g\",\"kind\":\"softmax\",\"outputs\":[\"a\",\"a\",\"b\"]}]}", "lists output \"a\" twice"));
    CHECK(parse_fails("{" ID2 "\"groups\":[{\"name\":\"g\",\"kind\":\"softmax\",\"outputs\":[\"a\"]},"
                      "{\"name\":\"h\",\"kind\":\"sigmoid\",\"outputs\":[\"b\",\"c\"]}]}", "at least 2"));
    CHECK(parse_fails("{" ID2 "\"groups\":[{\"name\":\"g\",\"kind\":\"relu\",\"outputs\":[\"a\",\"b\",\"c\"]}]}", "kind must be"));
    CHECK(parse_fails("{" ID2 "\"groups\":[{\"name\":\"g\",\"kind\":\"sigmoid\",\"outputs\":[\"a\"]},"
                      "{\"name\":\"g\",\"kind\":\"softmax\",\"outputs\":[\"b\",\"c\"]}]}", "appears twice"));
    CHECK(parse_fails("{" ID2 "\"groups\":[{\"name\":\"g\",\"kind\":\"sigmoid\",\"outputs\":[\"a\",\"b\",\"c\"],\"weight\":2}]}",
                      "unknown key \"weight\""));
    CHECK(parse_fails("{\"id2label\":{\"0\":\"a\",\"2\":\"b\"}}", "no key \"1\""));
    CHECK(parse_fails("{\"outputs\":[\"a\",\"a\"]}", "appears twice"));
    CHECK(parse_fails("{\"outputs\":[\"a\",\"\"]}", "non-empty"));
    CHECK(parse_fails("{\"groups\":[]}", "no id2label"));
    CHECK(parse_fails("{\"id2label\":{\"0\":\"y\"},\"problem_type\":\"regression\"}", "regression"));
    CHECK(parse_fails("{" ID2 "\"groups\":{}}", "non-empty array"));
#undef ID2
    /* without groups: derived from problem_type */
    sx_err err;
    head_layout L;
    cJSON *o = cJSON_Parse("{\"id2label\":{\"0\":\"a\",\"1\":\"b\"},\"problem_type\":\"single_label_classification\"}");
    CHECK(heads_from_json(o, "cfg", &L, &err) == 0 && L.n_groups == 1 && L.groups[0].kind == HEAD_SOFTMAX && L.groups[0].n == 2);
    heads_free(&L);
    cJSON_Delete(o);
    o = cJSON_Parse("{\"id2label\":{\"0\":\"fracture\"}}");
    CHECK(heads_from_json(o, "cfg", &L, &err) == 0 && L.n_groups == 1 && L.groups[0].kind == HEAD_SIGMOID &&
          L.group_of[0] == 0);
    heads_free(&L);
    cJSON_Delete(o);
}

TEST(test_heads_shipped_layouts_and_roundtrip) {
    sx_err err;
    head_layout L, M;
    CHECKF(heads_load("tasks/skelex_tumor_heads.json", &L, &err) == 0, "%s", err.msg);
    CHECK(L.n_out == 38 && L.n_groups == 5);
    if (L.n_out != 38 || L.n_groups != 5) { heads_free(&L); return; }
    /* the SKELEX indices: 0 | 1-4 | 5-33 | 34-36 | 37 */
    static const int first[5] = {0, 1, 5, 34, 37}, count[5] = {1, 4, 29, 3, 1};
    static const head_kind kind[5] = {HEAD_SIGMOID, HEAD_SOFTMAX, HEAD_SOFTMAX, HEAD_SOFTMAX, HEAD_SIGMOID};
    for (int g = 0; g < 5; g++) {
        CHECK(L.groups[g].kind == kind[g] && L.groups[g].n == count[g]);
        for (int i = 0; i < L.groups[g].n; i++) CHECK(L.groups[g].outputs[i] == first[g] + i);
    }
    CHECK(heads_output_index(&L, "malignant") == 1 && heads_output_index(&L, "benign") == 3 &&
          heads_output_index(&L, "implant") == 37 && heads_group_index(&L, "tumour") == 1);
    /* written into a config beside id2label and read back: the same layout */
    cJSON *cfg = cJSON_Parse("{\"model_type\":\"vit\",\"id2label\":{\"0\":\"old\"},\"hidden_size\":32}");
    heads_to_json(&L, cfg);
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(cfg, "id2label")) == 38);
    CHECK(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(cfg, "label2id"), "implant")->valueint == 37);
    char *text = cJSON_Print(cfg);
    cJSON_Delete(cfg);
    cfg = cJSON_Parse(text);
    free(text);
    CHECKF(heads_from_json(cfg, "roundtrip", &M, &err) == 0, "%s", err.msg);
    cJSON_Delete(cfg);
    CHECK(M.n_out == L.n_out && M.n_groups == L.n_groups);
    for (int j = 0; j < L.n_out && M.n_out == L.n_out; j++) CHECK(!strcmp(L.names[j], M.names[j]) && L.group_of[j] == M.group_of[j]);
    for (int g = 0; g < L.n_groups && M.n_groups == L.n_groups; g++)
        CHECK(!strcmp(L.groups[g].name, M.groups[g].name) && L.groups[g].kind == M.groups[g].kind &&
              L.groups[g].n == M.groups[g].n && !memcmp(L.groups[g].outputs, M.groups[g].outputs, sizeof(int) * L.groups[g].n));
    heads_free(&M);
    heads_free(&L);
    CHECKF(heads_load("tasks/open_multihead.json", &L, &err) == 0, "%s", err.msg);
    CHECK(L.n_groups == 6 && heads_group_index(&L, "knee_kl") >= 0 && L.groups[heads_group_index(&L, "knee_kl")].n == 5);
    heads_free(&L);
    CHECK(heads_load("tasks/does_not_exist.json", &L, &err) == -1 && strstr(err.msg, "does_not_exist"));
}

/* Each source of tasks/open_multihead.json labels a group of the layout,
 * maps its classes onto that group's outputs, and (with the data present)
 * loads as an ordinary task from ../shared/data. */
TEST(test_open_multihead_sources) {
    const char *path = "tasks/open_multihead.json";
    cJSON *r = read_json(path);
    sx_err err;
    head_layout L;
    CHECK(r && heads_from_json(r, path, &L, &err) == 0);
    if (!r || !L.n_out) { cJSON_Delete(r); return; }
    struct stat st;
    int have_data = stat("../shared/data/fracatlas/dataset.csv", &st) == 0;
    const cJSON *srcs = cJSON_GetObjectItemCaseSensitive(r, "sources");
    CHECK(cJSON_GetArraySize(srcs) == 6);
    int *labelled = calloc((size_t)L.n_groups, sizeof(int));
    for (const cJSON *s = srcs ? srcs->child : NULL; s; s = s->next) {
        const cJSON *gn = cJSON_GetObjectItemCaseSensitive(s, "group");
        int g = cJSON_IsString(gn) ? heads_group_index(&L, gn->valuestring) : -1;
        CHECK(g >= 0);
        if (g < 0) continue;
        labelled[g]++;
        const head_group *hg = &L.groups[g];
        const cJSON *out = cJSON_GetObjectItemCaseSensitive(s, "output"), *co = cJSON_GetObjectItemCaseSensitive(s, "class_outputs");
        cJSON *tj = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(s, "task"), 1);
        CHECK(tj != NULL);
        if (!tj) continue;
        if (hg->kind == HEAD_SIGMOID)
            CHECK(cJSON_IsString(out) && L.group_of[heads_output_index(&L, out->valuestring)] == g && !co);
        else {
            CHECK(cJSON_IsObject(co) && cJSON_GetArraySize(co) == hg->n && !out);
            for (const cJSON *m = co ? co->child : NULL; m; m = m->next)
                CHECK(cJSON_IsString(m) && heads_output_index(&L, m->valuestring) >= 0 &&
                      L.group_of[heads_output_index(&L, m->valuestring)] == g);
        }
        if (have_data) {
            /* the foot-id rule (name up to "_JPG") is for the multi-head loader; task.c groups otherwise */
            const cJSON *pf = cJSON_GetObjectItemCaseSensitive(tj, "patient_from");
            if (pf && cJSON_GetObjectItemCaseSensitive(pf, "name_before")) cJSON_DeleteItemFromObject(tj, "patient_from");
            char *text = cJSON_Print(tj);
            const char *tp = tl_path("source.json");
            CHECK(tl_write_text(tp, text) == 0);
            free(text);
            task t;
            int rc = task_load(tp, "../shared/data", &t, &err);
            CHECKF(rc == 0, "source %s: %s", gn->valuestring, err.msg);
            if (!rc) {
                CHECK(t.n > 500);
                CHECK(hg->kind == HEAD_SIGMOID ? t.n_classes == 2 : t.n_classes == hg->n);
                for (int c = 0; c < t.n_classes && co; c++) CHECK(cJSON_GetObjectItemCaseSensitive(co, t.class_names[c]) != NULL);
                if (!strcmp(gn->valuestring, "body_part")) CHECK(t.n_invalid > 0);   /* the mixed rows */
                task_free(&t);
            }
        }
        cJSON_Delete(tj);
    }
    for (int g = 0; g < L.n_groups; g++) CHECKF(labelled[g] == 1, "group %s labelled by %d sources", L.groups[g].name, labelled[g]);
    free(labelled);
    heads_free(&L);
    cJSON_Delete(r);
    if (!have_data) TEST_SKIP("../shared/data absent: sources checked against the layout only");
}
