/* test_metrics.c: metrics against scikit-learn/numpy reference values
 * (tests/fixtures/metrics/metrics.json, made by tools/make_metrics_fixture.py;
 * compared to 1e-9, bootstrap CIs included), metrics.json contents, edge
 * cases, and the SVG reports. */
#include "eval/metrics.h"
#include "eval/report.h"
#include "testlib.h"
#include <stdlib.h>
#include <string.h>

#define FIXTURE "tests/fixtures/metrics/metrics.json"
#define TOL 1e-9

static cJSON *load_fixture(void) {
    char *buf = tl_read_file(FIXTURE, NULL);
    if (!buf) return NULL;
    cJSON *j = cJSON_Parse(buf);
    free(buf);
    return j;
}

static double num(const cJSON *o, const char *key) { return cJSON_GetNumberValue(cJSON_GetObjectItem(o, key)); }

typedef struct {
    eval_set e;
    double *prob, *pred, *target;
    int *label;
    const cJSON *expect;
    const char *name;
} fixture_case;

static void case_read(const cJSON *c, fixture_case *fc) {
    memset(fc, 0, sizeof *fc);
    fc->name = cJSON_GetObjectItem(c, "name")->valuestring;
    fc->expect = cJSON_GetObjectItem(c, "expect");
    task_type_parse(cJSON_GetObjectItem(c, "type")->valuestring, &fc->e.type);
    int K = (int)num(c, "K");
    fc->e.n_classes = K;
    if (fc->e.type == TASK_REGRESSION) {
        const cJSON *p = cJSON_GetObjectItem(c, "pred"), *t = cJSON_GetObjectItem(c, "target");
        size_t n = (size_t)cJSON_GetArraySize(p);
        fc->pred = malloc(sizeof(double) * n);
        fc->target = malloc(sizeof(double) * n);
        for (size_t i = 0; i < n; i++) {
            fc->pred[i] = cJSON_GetArrayItem(p, (int)i)->valuedouble;
            fc->target[i] = cJSON_GetArrayItem(t, (int)i)->valuedouble;
        }
        fc->e.n = n;
        fc->e.pred = fc->pred;
        fc->e.target = fc->target;
        return;
    }
    const cJSON *p = cJSON_GetObjectItem(c, "prob"), *l = cJSON_GetObjectItem(c, "label");
    size_t n = (size_t)cJSON_GetArraySize(l);
    fc->prob = malloc(sizeof(double) * n * (size_t)K);
    fc->label = malloc(sizeof(int) * n);
    for (size_t i = 0; i < n; i++) {
        fc->label[i] = cJSON_GetArrayItem(l, (int)i)->valueint;
        const cJSON *row = cJSON_GetArrayItem(p, (int)i);
        for (int k = 0; k < K; k++) fc->prob[i * (size_t)K + k] = cJSON_GetArrayItem(row, k)->valuedouble;
    }
    fc->e.n = n;
    fc->e.prob = fc->prob;
    fc->e.label = fc->label;
}

static void case_free(fixture_case *fc) { free(fc->prob); free(fc->pred); free(fc->target); free(fc->label); }

#define NEAR(a, b, what) CHECKF(fabs((a) - (b)) <= TOL, "%s %s: %.15g vs sklearn %.15g", fc.name, what, (double)(a), (double)(b))

TEST(test_metrics_match_sklearn) {
    cJSON *fx = load_fixture();
    CHECKF(fx != NULL, "cannot read %s", FIXTURE);
    if (!fx) return;
    int n_boot = (int)num(fx, "n_boot");
    uint64_t seed = (uint64_t)num(fx, "bootstrap_seed");
    const cJSON *c;
    int cases = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(fx, "cases")) {
        fixture_case fc;
        case_read(c, &fc);
        const cJSON *x = fc.expect;
        size_t n = fc.e.n;
        cases++;
        if (fc.e.type == TASK_REGRESSION) {
            NEAR(metric_mae(fc.pred, fc.target, n), num(x, "mae"), "mae");
            NEAR(metric_rmse(fc.pred, fc.target, n), num(x, "rmse"), "rmse");
            metric_ci ci = metric_mae_ci(fc.pred, fc.target, n, n_boot, 0.95, seed);
            const cJSON *want = cJSON_GetObjectItem(x, "mae_ci95");
            NEAR(ci.lo, cJSON_GetArrayItem(want, 0)->valuedouble, "mae ci lo");
            NEAR(ci.hi, cJSON_GetArrayItem(want, 1)->valuedouble, "mae ci hi");
            case_free(&fc);
            continue;
        }
        int K = fc.e.n_classes;
        int *pred = malloc(sizeof(int) * n);
        for (size_t i = 0; i < n; i++) pred[i] = metric_argmax(fc.prob + i * (size_t)K, K);
        double per[16];
        NEAR(metric_auroc_prob(fc.prob, K, fc.label, n, per), num(x, "auroc"), "auroc");
        for (int k = 0; k < K; k++) NEAR(per[k], cJSON_GetArrayItem(cJSON_GetObjectItem(x, "auroc_per_class"), k)->valuedouble, "auroc per class");
        metric_ci ci = metric_auroc_ci(fc.prob, K, fc.label, n, n_boot, 0.95, seed);
        const cJSON *want = cJSON_GetObjectItem(x, "auroc_ci95");
        NEAR(ci.lo, cJSON_GetArrayItem(want, 0)->valuedouble, "auroc ci lo");
        NEAR(ci.hi, cJSON_GetArrayItem(want, 1)->valuedouble, "auroc ci hi");
        CHECKF(ci.valid == (int)num(x, "auroc_ci_valid"), "%s: %d valid resamples vs %d", fc.name, ci.valid, (int)num(x, "auroc_ci_valid"));
        NEAR(metric_accuracy(pred, fc.label, n), num(x, "accuracy"), "accuracy");
        NEAR(metric_balanced_accuracy(pred, fc.label, n, K), num(x, "balanced_accuracy"), "balanced accuracy");
        NEAR(metric_f1(pred, fc.label, n, K), num(x, "f1"), "f1");
        NEAR(metric_qwk(pred, fc.label, n, K), num(x, "qwk"), "qwk");
        calibration cal;
        metric_calibration(fc.prob, K, fc.label, n, &cal);
        NEAR(cal.ece, num(x, "ece"), "ece");
        for (int b = 0; b < CALIB_BINS; b++)
            CHECK(cal.count[b] == (size_t)cJSON_GetArrayItem(cJSON_GetObjectItem(x, "calibration_count"), b)->valueint);
        size_t cm[256];
        metric_confusion(pred, fc.label, n, K, cm);
        const cJSON *wcm = cJSON_GetObjectItem(x, "confusion_matrix");
        for (int t = 0; t < K; t++)
            for (int p = 0; p < K; p++)
                CHECK(cm[t * K + p] == (size_t)cJSON_GetArrayItem(cJSON_GetArrayItem(wcm, t), p)->valueint);
        /* metrics.json carries the same numbers */
        sx_err err;
        cJSON *mj = metrics_json(&fc.e, n_boot, seed, &err);
        CHECKF(mj != NULL, "%s", err.msg);
        if (mj) {
            NEAR(num(mj, "auroc"), num(x, "auroc"), "json auroc");
            NEAR(cJSON_GetArrayItem(cJSON_GetObjectItem(mj, "auroc_ci95"), 1)->valuedouble, cJSON_GetArrayItem(want, 1)->valuedouble, "json ci");
            NEAR(num(mj, "ece"), num(x, "ece"), "json ece");
            NEAR(num(mj, K == 2 ? "f1" : "f1_macro"), num(x, "f1"), "json f1");
            CHECK((cJSON_GetObjectItem(mj, "qwk") != NULL) == (fc.e.type == TASK_ORDINAL));
            if (K == 2) {
                NEAR(num(mj, "sensitivity"), num(x, "sensitivity"), "sensitivity");
                NEAR(num(mj, "specificity"), num(x, "specificity"), "specificity");
            }
            CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(mj, "confusion_matrix")) == K);
            cJSON_Delete(mj);
        }
        free(pred);
        case_free(&fc);
    }
    CHECK(cases == 5);
    const cJSON *pc = cJSON_GetObjectItem(fx, "percentile");
    const cJSON *vals = cJSON_GetObjectItem(pc, "values");
    int nv = cJSON_GetArraySize(vals);
    for (int q = 0; q < cJSON_GetArraySize(cJSON_GetObjectItem(pc, "q")); q++) {
        double *v = malloc(sizeof(double) * (size_t)nv);
        for (int i = 0; i < nv; i++) v[i] = cJSON_GetArrayItem(vals, i)->valuedouble;
        double got = metric_percentile(v, (size_t)nv, cJSON_GetArrayItem(cJSON_GetObjectItem(pc, "q"), q)->valuedouble);
        CHECK_NEAR(got, cJSON_GetArrayItem(cJSON_GetObjectItem(pc, "expect"), q)->valuedouble, TOL);
        free(v);
    }
    cJSON_Delete(fx);
}

TEST(test_metrics_edge_cases) {
    double s[6] = {0.1, 0.4, 0.35, 0.8, 0.5, 0.5};
    int y[6] = {0, 0, 1, 1, 0, 1}, one[6] = {1, 1, 1, 1, 1, 1};
    CHECK_NEAR(metric_auroc(s, y, 4), 0.75, 1e-15);          /* sklearn's textbook example */
    CHECK(isnan(metric_auroc(s, one, 6)));
    double flat[4] = {0.3, 0.3, 0.3, 0.3};
    CHECK_NEAR(metric_auroc(flat, y, 4), 0.5, 1e-15);        /* all tied */
    double perfect[4] = {0, 0.1, 0.9, 1}, reversed[4] = {1, 0.9, 0.1, 0};
    CHECK_NEAR(metric_auroc(perfect, y, 4), 1.0, 1e-15);     /* y starts 0, 0, 1, 1 */
    CHECK_NEAR(metric_auroc(reversed, y, 4), 0.0, 1e-15);
    /* ROC curve: sklearn roc_curve([0,0,1,1], [.1,.4,.35,.8], drop_intermediate=False) */
    double *fpr, *tpr;
    size_t m;
    CHECK(metric_roc_curve(s, y, 4, &fpr, &tpr, &m) == 0);
    double wf[5] = {0, 0, 0.5, 0.5, 1}, wt[5] = {0, 0.5, 0.5, 1, 1};
    CHECK(m == 5);
    for (size_t i = 0; i < m && i < 5; i++) { CHECK_NEAR(fpr[i], wf[i], 1e-15); CHECK_NEAR(tpr[i], wt[i], 1e-15); }
    free(fpr); free(tpr);
    CHECK(metric_roc_curve(s, one, 6, &fpr, &tpr, &m) == -1);
    /* a multiclass set without one of its classes: AUROC undefined, CI has no valid resample */
    double p3[9] = {0.7, 0.2, 0.1, 0.2, 0.7, 0.1, 0.6, 0.3, 0.1};
    int l3[3] = {0, 1, 0};
    CHECK(isnan(metric_auroc_prob(p3, 3, l3, 3, NULL)));
    metric_ci ci = metric_auroc_ci(p3, 3, l3, 3, 50, 0.95, 1);
    CHECK(ci.valid == 0 && isnan(ci.lo) && ci.resamples == 50);
    /* QWK: perfect agreement 1, constant predictions 0 */
    int a[5] = {0, 1, 2, 3, 4}, zero[5] = {2, 2, 2, 2, 2};
    CHECK_NEAR(metric_qwk(a, a, 5, 5), 1.0, 1e-15);
    CHECK_NEAR(metric_qwk(zero, a, 5, 5), 0.0, 1e-15);
    /* eval_set_check catches bad input */
    double bad[4] = {0.5, 0.6, 0.5, 0.5};
    int lab[2] = {0, 1}, lab_bad[2] = {0, 2};
    sx_err err;
    eval_set e = {.type = TASK_BINARY, .n_classes = 2, .n = 2, .prob = bad, .label = lab};
    CHECK(eval_set_check(&e, &err) != 0 && strstr(err.msg, "sum to"));
    bad[1] = 0.5;
    e.label = lab_bad;
    CHECK(eval_set_check(&e, &err) != 0 && strstr(err.msg, "label 2"));
    e.label = lab;
    bad[0] = NAN;
    CHECK(eval_set_check(&e, &err) != 0 && strstr(err.msg, "outside [0, 1]"));
    CHECK(metrics_json(&e, 10, 0, &err) == NULL);
    double pr[2] = {1, INFINITY}, tg[2] = {1, 2};
    eval_set r = {.type = TASK_REGRESSION, .n_classes = 1, .n = 2, .pred = pr, .target = tg};
    CHECK(eval_set_check(&r, &err) != 0 && strstr(err.msg, "non-finite"));
    pr[1] = 4;
    cJSON *j = metrics_json(&r, 20, 3, &err);
    CHECK(j && num(j, "mae") == 1.0 && cJSON_GetObjectItem(j, "mae_ci95") && !cJSON_GetObjectItem(j, "auroc"));
    cJSON_Delete(j);
    /* ECE: confidence exactly on a bin edge goes to the lower bin */
    double pe[4] = {0.6, 0.4, 0.4, 0.6};   /* confidence 0.6 = 9/15: the bin (8/15, 9/15] */
    int le[2] = {0, 0};
    calibration cal;
    metric_calibration(pe, 2, le, 2, &cal);
    CHECK(cal.count[8] == 2 && cal.count[9] == 0);
    CHECK_NEAR(cal.ece, fabs(0.5 - 0.6), 1e-15);   /* one of the two right, both at confidence 0.6 */
}

/* ------------------------------------------------------------- reports */

static int well_formed(const char *s) {
    size_t n = s ? strlen(s) : 0;
    return n > 20 && strncmp(s, "<svg", 4) == 0 && strcmp(s + n - 7, "</svg>\n") == 0;
}

TEST(test_report_svgs) {
    char p[512];
    sx_err err;
    /* confusion matrix with known counts and a name that needs escaping */
    size_t cm[4] = {5, 2, 1, 7};
    const char *names[2] = {"no <fracture>", "fracture & more"};
    snprintf(p, sizeof p, "%s/cm.svg", tl_tmpdir());
    CHECK(report_confusion_svg(p, "cm test", cm, 2, names, &err) == 0);
    char *s = tl_read_file(p, NULL);
    CHECK(well_formed(s));
    CHECK(s && strstr(s, ">5<") && strstr(s, ">2<") && strstr(s, ">1<") && strstr(s, ">7<"));
    CHECK(s && strstr(s, ">71%<") && strstr(s, ">88%<"));              /* row shares */
    CHECK(s && strstr(s, "no &lt;fracture&gt;") && strstr(s, "fracture &amp; more") && !strstr(s, "<fracture>"));
    CHECK(s && strstr(s, "Predicted class") && strstr(s, "True class"));
    free(s);
    /* ROC: binary and multiclass */
    double prob[12] = {0.9, 0.1, 0.6, 0.4, 0.35, 0.65, 0.2, 0.8, 0.5, 0.5, 0.7, 0.3};
    int lab[6] = {0, 0, 1, 1, 1, 0};
    snprintf(p, sizeof p, "%s/roc.svg", tl_tmpdir());
    CHECK(report_roc_svg(p, "roc", prob, 2, lab, 6, names, &err) == 0);
    s = tl_read_file(p, NULL);
    char want[64];
    int y1[6] = {0, 0, 1, 1, 1, 0};
    double p1[6] = {0.1, 0.4, 0.65, 0.8, 0.5, 0.3};
    snprintf(want, sizeof want, "(AUC %.3f)", metric_auroc(p1, y1, 6));
    CHECK(well_formed(s) && strstr(s, want) && strstr(s, "chance") && strstr(s, "<polyline"));
    free(s);
    double p3[18] = {0.7, 0.2, 0.1, 0.1, 0.8, 0.1, 0.2, 0.2, 0.6, 0.5, 0.3, 0.2, 0.3, 0.3, 0.4, 0.1, 0.6, 0.3};
    int l3[6] = {0, 1, 2, 0, 2, 1};
    CHECK(report_roc_svg(p, "roc3", p3, 3, l3, 6, NULL, &err) == 0);
    s = tl_read_file(p, NULL);
    int curves = 0;
    for (const char *q = s; q && (q = strstr(q, "<polyline")); q++) curves++;
    CHECK(well_formed(s) && curves == 3 && strstr(s, "class 2 (AUC"));
    free(s);
    /* reliability diagram: ECE in the title, bin counts written */
    calibration cal;
    int lab6[6] = {0, 0, 1, 1, 1, 0};
    metric_calibration(prob, 2, lab6, 6, &cal);
    snprintf(p, sizeof p, "%s/rel.svg", tl_tmpdir());
    CHECK(report_reliability_svg(p, "rel", &cal, &err) == 0);
    s = tl_read_file(p, NULL);
    snprintf(want, sizeof want, "(ECE %.3f)", cal.ece);
    CHECK(well_formed(s) && strstr(s, want) && strstr(s, "perfect calibration"));
    for (int b = 0; b < CALIB_BINS; b++)
        if (cal.count[b]) { snprintf(want, sizeof want, ">%zu</text>", cal.count[b]); CHECK(s && strstr(s, want)); }
    free(s);
    /* report_write_all: classification and regression */
    eval_set e = {.type = TASK_BINARY, .n_classes = 2, .class_names = names, .n = 6, .prob = prob, .label = lab};
    CHECK(report_write_all(tl_tmpdir(), "demo", &e, &err) == 0);
    const char *files[3] = {"roc.svg", "confusion.svg", "reliability.svg"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", tl_tmpdir(), files[i]);
        s = tl_read_file(p, NULL);
        CHECKF(well_formed(s), "%s", files[i]);
        free(s);
    }
    double pred[3] = {10, 20, 35}, target[3] = {12, 20, 30};
    const char *vn[1] = {"bone age (months)"};
    eval_set r = {.type = TASK_REGRESSION, .n_classes = 1, .class_names = vn, .n = 3, .pred = pred, .target = target};
    CHECK(report_write_all(tl_tmpdir(), "ba", &r, &err) == 0);
    snprintf(p, sizeof p, "%s/scatter.svg", tl_tmpdir());
    s = tl_read_file(p, NULL);
    CHECK(well_formed(s) && strstr(s, "(MAE 2.33)") && strstr(s, "Predicted bone age (months)"));
    free(s);
    /* an unwritable path fails with a message */
    CHECK(report_confusion_svg("/nonexistent-dir/x.svg", "t", cm, 2, NULL, &err) != 0 && strstr(err.msg, "cannot write"));
}

/* ------------------------------------------------- non-finite scores */

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

/* Runs fn in a child with a 10 s alarm: 1 when it returned in time. */
static int returns_in_time(void (*fn)(void)) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return 0;
    if (pid == 0) { alarm(10); fn(); _exit(0); }
    int st;
    if (waitpid(pid, &st, 0) != pid) return 0;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static void nan_metrics(void) {
    double s[6] = {0.1, NAN, 0.7, NAN, 0.3, INFINITY};
    int pos[6] = {0, 1, 1, 0, 0, 1};
    double prob[12];
    for (int i = 0; i < 6; i++) { prob[2 * i + 1] = s[i]; prob[2 * i] = 1 - s[i]; }
    double per[2], *fpr, *tpr;
    size_t m;
    if (!isnan(metric_auroc(s, pos, 6))) _exit(2);
    if (!isnan(metric_auroc_prob(prob, 2, pos, 6, per)) || !isnan(per[0]) || !isnan(per[1])) _exit(3);
    metric_ci ci = metric_auroc_ci(prob, 2, pos, 6, 50, 0.95, 1);
    if (!isnan(ci.lo) || ci.valid != 0) _exit(4);
    if (metric_roc_curve(s, pos, 6, &fpr, &tpr, &m) != -1) _exit(5);
    eval_set es = {TASK_BINARY, 2, NULL, 6, prob, pos, NULL, NULL};
    sx_err e;
    cJSON *j = metrics_json(&es, 10, 1, &e);
    if (j || !strstr(e.msg, "diverged")) _exit(6);
}

TEST(test_metrics_nonfinite_scores_never_loop) {
    CHECK(returns_in_time(nan_metrics));
    /* finite scores still give the plain answer */
    double s[4] = {0.1, 0.4, 0.35, 0.8};
    int pos[4] = {0, 0, 1, 1};
    CHECK_NEAR(metric_auroc(s, pos, 4), 0.75, 1e-12);
}
