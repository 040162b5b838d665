/* test_finetune.c: the classifier (ViTForImageClassification) and
 * fine-tuning: head + encoder gradients against finite differences for
 * every loss, micro-batches equal to the whole batch, layer-wise lr decay
 * ids, the augmentation's identities, HF checkpoint layout and round trip,
 * best-epoch selection when the last epoch is worse, and `skelex finetune` /
 * `skelex eval` end to end on synthetic images. */
#include "io/checkpoint.h"
#include "nn/classifier.h"
#include "adapt/finetune.h"
#include "eval/metrics.h"
#include "core/rng.h"
#include "io/safetensors.h"
#include "data/split.h"
#include "testlib.h"
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void random_pixels(float *px, size_t n, uint64_t seed) {
    sx_rng r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) px[i] = rng_normal(&r);
}

/* d(loss)/d(param) by central differences at a few positions of each named
 * tensor and of the head, for one task type. */
static void check_grads(task_type type, int K, const float *y) {
    mae_config cfg = tl_toy_config(16);
    classifier c;
    sx_err err;
    const char *names[] = {"a", "b", "c"};
    CHECKF(classifier_create(&c, NULL, &cfg, type, K, names, 5, &err) == 0, "%s", err.msg);
    /* a head large enough that its gradient into the encoder is not tiny */
    for (size_t i = 0; i < (size_t)c.n_out * cfg.hidden_size; i++) c.head_w[i] *= 5.0f;
    if (type == TASK_REGRESSION) { c.y_mean = 3.0f; c.y_sd = 2.0f; }
    else {   /* class weights (as --balance-classes sets them) enter loss and gradient alike */
        c.class_weight = malloc(sizeof(float) * K);
        for (int k = 0; k < K; k++) c.class_weight[k] = 0.5f + k;
    }
    int B = 3, S = cfg.image_size;
    float *px = malloc(sizeof(float) * B * 3 * S * S);
    random_pixels(px, (size_t)B * 3 * S * S, 9);
    CHECK(classifier_forward(&c, px, B, &err) == 0);
    classifier_zero_grad(&c);
    classifier_loss(&c, y, 1.0f);
    const char *tn[] = {"vit.embeddings.cls_token", "vit.encoder.layer.0.attention.attention.query.weight",
                        "vit.encoder.layer.1.output.dense.weight", "vit.layernorm.bias"};
    for (int k = 0; k < 5; k++) {
        float *p, g;
        size_t numel;
        const param_info *pi = k < 4 ? mae_find_param(&c.enc, tn[k]) : NULL;
        for (int t = 0; t < 3; t++) {
            if (pi) { numel = pi->numel; p = c.enc.params + pi->offset + (size_t)(t * 7919) % numel; g = c.enc.grads[p - c.enc.params]; }
            else { numel = (size_t)c.n_out * cfg.hidden_size; p = c.head_w + (size_t)(t * 13) % numel; g = c.ghead_w[p - c.head_w]; }
            float keep = *p, h = 2e-3f;
            double l[2];
            for (int s = 0; s < 2; s++) {
                *p = keep + (s ? -h : h);
                classifier_forward(&c, px, B, &err);
                l[s] = classifier_loss(&c, y, 0.0f);
            }
            *p = keep;
            double num = (l[0] - l[1]) / (2 * h);
            CHECKF(fabs(num - g) <= 3e-2 * (fabs(g) + 2e-3), "type %d %s[%d]: numeric %.6g analytic %.6g", (int)type,
                   pi ? tn[k] : "classifier.weight", t, num, (double)g);
        }
    }
    free(px);
    classifier_free(&c);
}

TEST(test_classifier_grads_bce_ce_mse) {
    float yb[3] = {1, 0, 1}, ym[3] = {2, 0, 1}, yr[3] = {1.5f, 4.0f, -2.0f};
    check_grads(TASK_BINARY, 2, yb);
    check_grads(TASK_MULTICLASS, 3, ym);
    check_grads(TASK_REGRESSION, 1, yr);
}

TEST(test_classifier_microbatch_equals_batch) {
    mae_config cfg = tl_toy_config(16);
    classifier a, b;
    sx_err err;
    CHECK(classifier_create(&a, NULL, &cfg, TASK_MULTICLASS, 3, NULL, 1, &err) == 0);
    CHECK(classifier_create(&b, NULL, &cfg, TASK_MULTICLASS, 3, NULL, 1, &err) == 0);
    int B = 6, S = cfg.image_size;
    size_t per = (size_t)3 * S * S;
    float *px = malloc(sizeof(float) * B * per), y[6] = {0, 1, 2, 2, 1, 0};
    random_pixels(px, B * per, 4);
    classifier_zero_grad(&a);
    CHECK(classifier_forward(&a, px, B, &err) == 0);
    float la = classifier_loss(&a, y, 1.0f);
    classifier_zero_grad(&b);
    double lb = 0;
    for (int m = 0; m < B; m += 2) {   /* three micro-batches of 2 */
        CHECK(classifier_forward(&b, px + m * per, 2, &err) == 0);
        lb += classifier_loss(&b, y + m, 2.0f / B) * 2.0 / B;
    }
    CHECK_NEAR(la, lb, 1e-5);
    double worst = 0;
    for (size_t i = 0; i < a.enc.n_floats; i++) {
        double d = fabs(a.enc.grads[i] - b.enc.grads[i]) / (fabs(a.enc.grads[i]) + 1e-4);
        worst = d > worst ? d : worst;
    }
    CHECKF(worst < 1e-3, "worst relative gradient difference %g", worst);
    for (int i = 0; i < 3 * cfg.hidden_size; i++) CHECK_NEAR(a.ghead_w[i], b.ghead_w[i], 1e-6);
    free(px);
    classifier_free(&a);
    classifier_free(&b);
}

TEST(test_classifier_layer_ids) {
    mae_config cfg = tl_toy_config(16);
    classifier c;
    sx_err err;
    CHECK(classifier_create(&c, NULL, &cfg, TASK_BINARY, 2, NULL, 1, &err) == 0);
    struct { const char *name; int id; } want[] = {
        {"vit.embeddings.cls_token", 0}, {"vit.embeddings.patch_embeddings.projection.weight", 0},
        {"vit.embeddings.position_embeddings", -1},   /* fixed sin-cos: frozen */
        {"vit.encoder.layer.0.attention.attention.query.weight", 1}, {"vit.encoder.layer.1.output.dense.bias", 2},
        {"vit.layernorm.weight", 3}, {"decoder.decoder_pred.weight", -1}};
    for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) {
        const param_info *pi = mae_find_param(&c.enc, want[k].name);
        CHECKF(pi && classifier_layer_id(&c, pi) == want[k].id, "%s", want[k].name);
    }
    classifier_free(&c);
}

TEST(test_cls_augment_identities) {
    int S = 24;
    uint8_t in[24 * 24], out[24 * 24];
    for (int i = 0; i < S * S; i++) in[i] = (uint8_t)((i * 37) % 251);
    sx_rng r;
    rng_seed(&r, 1);
    cls_aug none = {0, 0, 0, 0};
    cls_augment_u8(in, S, &none, &r, out);
    CHECK(memcmp(in, out, sizeof in) == 0);
    cls_aug flip = {0, 1, 0, 0};
    cls_augment_u8(in, S, &flip, &r, out);
    int mirrored = 1;
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) mirrored &= out[y * S + x] == in[y * S + S - 1 - x];
    CHECK(mirrored);
    /* a rotation keeps the centre pixel of a constant image and blacks out corners it rotates in */
    memset(in, 200, sizeof in);
    cls_aug rot = {10, 0, 0, 0};
    int corner_dark = 0;
    for (int k = 0; k < 8; k++) {
        cls_augment_u8(in, S, &rot, &r, out);
        CHECK(out[(S / 2) * S + S / 2] == 200);
        corner_dark += out[0] < 200 || out[S - 1] < 200;
    }
    CHECK(corner_dark >= 7);
    /* brightness/contrast stay in range and change the image */
    cls_aug bc = {0, 0, 0.2, 0.2};
    for (int i = 0; i < S * S; i++) in[i] = (uint8_t)(i % S * 10);
    cls_augment_u8(in, S, &bc, &r, out);
    CHECK(memcmp(in, out, sizeof in) != 0);
}

static int read_file(const char *path, char *buf, size_t cap) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = 0;
    fclose(f);
    return 0;
}

TEST(test_classifier_checkpoint_hf_layout) {
    mae_config cfg = tl_toy_config(16);
    sx_err err;
    char dir[600], path[700];
    snprintf(dir, sizeof dir, "%s/cls", tl_tmpdir());
    const char *names[] = {"mild", "severe"};
    task_type types[3] = {TASK_BINARY, TASK_MULTICLASS, TASK_REGRESSION};
    int Ks[3] = {2, 2, 1};
    int S = cfg.image_size;
    float *px = malloc(sizeof(float) * 2 * 3 * S * S);
    random_pixels(px, (size_t)2 * 3 * S * S, 2);
    for (int t = 0; t < 3; t++) {
        classifier a, b;
        CHECK(classifier_create(&a, NULL, &cfg, types[t], Ks[t], names, 3, &err) == 0);
        for (int i = 0; i < a.n_out; i++) a.head_b[i] = 0.1f * (i + 1);
        if (types[t] == TASK_REGRESSION) { a.y_mean = 50.0f; a.y_sd = 12.0f; }
        CHECKF(classifier_save(&a, dir, "demo", &err) == 0, "%s", err.msg);
        CHECKF(classifier_load(&b, dir, &err) == 0, "%s", err.msg);
        CHECK(b.type == types[t] && b.n_classes == a.n_classes && b.n_out == a.n_out);
        CHECK(!strcmp(b.class_names[0], a.class_names[0]));
        double pa[4], pb[4], ra[2], rb[2];
        CHECK(classifier_forward(&a, px, 2, &err) == 0 && classifier_forward(&b, px, 2, &err) == 0);
        classifier_outputs(&a, pa, ra);
        classifier_outputs(&b, pb, rb);
        for (int i = 0; i < 2; i++) {
            if (types[t] == TASK_REGRESSION) CHECK_NEAR(ra[i], rb[i], 1e-4 * fabs(ra[i]));   /* folded head */
            else for (int k = 0; k < 2; k++) CHECK_NEAR(pa[i * 2 + k], pb[i * 2 + k], 1e-6);
        }
        /* HF ViTForImageClassification: vit.* + classifier.*, no decoder */
        st_file f;
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        CHECK(st_open(path, &f, &err) == 0);
        const st_tensor *w = st_find(&f, "classifier.weight");
        CHECK(w && w->ndim == 2 && w->shape[0] == a.n_out && w->shape[1] == cfg.hidden_size);
        CHECK(st_find(&f, "classifier.bias") && st_find(&f, "vit.layernorm.weight") &&
              st_find(&f, "vit.encoder.layer.1.attention.attention.key.weight"));
        int dec = 0;
        for (int i = 0; i < f.n; i++) dec += !strncmp(f.tensors[i].name, "decoder.", 8);
        CHECK(dec == 0);
        st_close(&f);
        char buf[8192];
        snprintf(path, sizeof path, "%s/config.json", dir);
        CHECK(read_file(path, buf, sizeof buf) == 0);
        cJSON *j = cJSON_Parse(buf);
        CHECK(!strcmp(cJSON_GetObjectItem(j, "model_type")->valuestring, "vit"));
        CHECK(!strcmp(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "architectures"), 0)->valuestring, "ViTForImageClassification"));
        const cJSON *id2 = cJSON_GetObjectItem(j, "id2label");
        CHECK(cJSON_GetArraySize(id2) == a.n_out);
        if (types[t] == TASK_BINARY) CHECK(!strcmp(cJSON_GetObjectItem(id2, "0")->valuestring, "severe"));
        cJSON_Delete(j);
        classifier_free(&a);
        classifier_free(&b);
    }
    /* a head config that contradicts itself is a clear error, never a crash */
    {
        char cfgtext[8192];
        snprintf(path, sizeof path, "%s/config.json", dir);
        CHECK(read_file(path, cfgtext, sizeof cfgtext) == 0);
        cJSON *j = cJSON_Parse(cfgtext);
        cJSON *sxo = cJSON_GetObjectItem(j, "skelex");
        cJSON_ReplaceItemInObject(sxo, "task_type", cJSON_CreateString("binary"));
        cJSON_ReplaceItemInObject(sxo, "classes", cJSON_CreateStringArray((const char *const[]){"only"}, 1));
        char *txt = cJSON_Print(j);
        tl_write_text(path, txt);
        free(txt);
        cJSON_Delete(j);
        classifier bad;
        CHECK(classifier_load(&bad, dir, &err) == -1 && strstr(err.msg, "binary head cannot have 1 class"));
    }
    /* an MAE checkpoint is not a classifier: a clear error */
    mae_model m;
    CHECK(mae_build(&m, &cfg, &err) == 0);
    mae_init_weights(&m, 1);
    snprintf(dir, sizeof dir, "%s/mae", tl_tmpdir());
    CHECK(checkpoint_save(dir, &m, &err) == 0);
    classifier c;
    CHECK(classifier_load(&c, dir, &err) == -1 && strstr(err.msg, "not a classifier"));
    /* ... but fine-tuning starts from it */
    CHECKF(classifier_create(&c, dir, NULL, TASK_BINARY, 2, NULL, 1, &err) == 0, "%s", err.msg);
    const param_info *pi = mae_find_param(&c.enc, "vit.encoder.layer.1.output.dense.weight");
    CHECK(memcmp(c.enc.params + pi->offset, m.params + pi->offset, pi->numel * 4) == 0);
    classifier_free(&c);
    mae_free(&m);
    free(px);
}

/* Best-epoch selection: after the last epoch the hook flips the head's sign,
 * so the last epoch's validation AUROC is 1 - the previous one. The model
 * saved as best must be an earlier epoch, and reloading it must give the
 * logged best score. */
static void sabotage_last(int epoch, classifier *c, void *ctx) {
    if (epoch != *(int *)ctx) return;
    for (size_t i = 0; i < (size_t)c->n_out * c->enc.cfg.hidden_size; i++) c->head_w[i] = -c->head_w[i];
    for (int k = 0; k < c->n_out; k++) c->head_b[k] = -c->head_b[k];
}

TEST(test_finetune_saves_best_not_last_epoch) {
    const char *d = tl_tmpdir();
    CHECK(tl_synthetic_task(d, 16) == 0);
    char p[700], best[700];
    sx_err err;
    task t;
    snprintf(p, sizeof p, "%s/task.json", d);
    CHECKF(task_load(p, d, &t, &err) == 0, "%s", err.msg);
    split sp;
    CHECK(split_make(&t, 0.0, 2, 1, &sp, &err) == 0);
    size_t ntr, nva, *tr = split_indices(&sp, SPLIT_TRAIN, 0, &ntr), *va = split_indices(&sp, SPLIT_VAL, 0, &nva);
    snprintf(p, sizeof p, "%s/cfg.json", d);
    mae_config cfg;
    CHECK(config_load(p, &cfg, &err) == 0);
    const char **paths = malloc(sizeof(char *) * t.n);
    for (size_t i = 0; i < t.n; i++) paths[i] = t.samples[i].path;
    image_cache ic;
    CHECKF(image_cache_build(&ic, paths, t.n, cfg.image_size, NULL, &err) == 0, "%s", err.msg);
    classifier c;
    CHECK(classifier_create(&c, NULL, &cfg, t.type, 2, (const char *const *)t.class_names, 1, &err) == 0);
    ft_opts o;
    ft_opts_default(&o);
    int last = 6;
    o.epochs = last; o.warmup_epochs = 1; o.batch = 8; o.micro_batch = 8; o.lr = 2e-3; o.quiet = 1;
    o.epoch_hook = sabotage_last;
    o.hook_ctx = &last;
    snprintf(best, sizeof best, "%s/best", d);
    ft_result res;
    CHECKF(finetune_fold(&c, &t, &ic, tr, ntr, va, nva, &o, best, d, NULL, &res, &err) == 0, "%s", err.msg);
    CHECK(res.n_log == last);
    CHECKF(res.best_epoch < last, "best epoch %d", res.best_epoch);
    double best_score = res.log[res.best_epoch - 1].val_score, last_score = res.log[last - 1].val_score;
    CHECKF(best_score > 0.9 && last_score < 0.1, "best %.3f last %.3f", best_score, last_score);
    /* the file holds the best epoch, not the last one */
    classifier b;
    CHECKF(classifier_load(&b, best, &err) == 0, "%s", err.msg);
    double *prob = malloc(sizeof(double) * nva * 2);
    CHECK(finetune_predict(&b, &t, &ic, va, nva, 4, prob, NULL, NULL, &err) == 0);
    CHECK_NEAR(metric_task_score(&t, va, nva, prob, NULL), best_score, 1e-9);
    snprintf(p, sizeof p, "%s/log.csv", d);
    CHECK(access(p, R_OK) == 0);
    snprintf(p, sizeof p, "%s/curves.svg", d);
    CHECK(access(p, R_OK) == 0);
    free(prob);
    classifier_free(&b);
    classifier_free(&c);
    ft_result_free(&res);
    image_cache_free(&ic);
    free(paths); free(tr); free(va);
    split_free(&sp);
    task_free(&t);
}

TEST(test_finetune_cli_learns_and_eval_scores) {
    const char *d = tl_tmpdir();
    CHECK(tl_synthetic_task(d, 30) == 0);
    char cmd[4096], out[16384], p[700], buf[1 << 16];
    snprintf(cmd, sizeof cmd,
             "OMP_NUM_THREADS=1 ./skelex finetune --task %s/task.json --data-root %s --config %s/cfg.json --out %s/ft "
             "--folds 3 --only-folds 0,1 --test-frac 0.2 --epochs 12 --warmup-epochs 1 --batch 8 --lr 2e-3", d, d, d, d);
    CHECKF(tl_run(cmd, out, sizeof out) == 0, "%s", out);
    snprintf(p, sizeof p, "%s/ft/results.json", d);
    CHECK(read_file(p, buf, sizeof buf) == 0);
    cJSON *j = cJSON_Parse(buf);
    const cJSON *au = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "summary"), "auroc"), "mean");
    CHECKF(cJSON_IsNumber(au) && au->valuedouble > 0.9, "test AUROC %g\n%s", cJSON_IsNumber(au) ? au->valuedouble : -1, out);
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(j, "folds")) == 2);
    cJSON_Delete(j);
    const char *files[] = {"ft/split.json", "ft/fold0/best/config.json", "ft/fold0/best/model.safetensors",
                           "ft/fold0/log.csv", "ft/fold0/curves.svg", "ft/fold1/test/predictions.csv",
                           "ft/fold1/test/metrics.json", "ft/fold1/test/roc.svg", "ft/fold1/test/reliability.svg"};
    for (size_t k = 0; k < sizeof files / sizeof files[0]; k++) {
        snprintf(p, sizeof p, "%s/%s", d, files[k]);
        CHECKF(access(p, R_OK) == 0, "%s", files[k]);
    }
    /* eval of fold 0's best model on the task's test split: the same numbers as finetune wrote */
    snprintf(cmd, sizeof cmd, "./skelex eval --model %s/ft/fold0/best --task %s/task.json --data-root %s --test-frac 0.2 "
             "--out %s/ev", d, d, d, d);
    CHECKF(tl_run(cmd, out, sizeof out) == 0, "%s", out);
    char a[1 << 14], b[1 << 14];
    snprintf(p, sizeof p, "%s/ev/predictions.csv", d);
    CHECK(read_file(p, a, sizeof a) == 0);
    snprintf(p, sizeof p, "%s/ft/fold0/test/predictions.csv", d);
    CHECK(read_file(p, b, sizeof b) == 0);
    CHECK(strcmp(a, b) == 0 && !strncmp(a, "image,label,prob_dark,prob_bright,predicted\n", 44));
    int rows = 0;
    for (char *s = a; *s; s++) rows += *s == '\n';
    CHECK(rows == 1 + 12);   /* 20 % of 60 */
    snprintf(p, sizeof p, "%s/ev/metrics.json", d);
    CHECK(access(p, R_OK) == 0);
    /* a folder without labels: predictions only */
    snprintf(cmd, sizeof cmd, "./skelex eval --model %s/ft/fold0/best --images %s/data/bright --out %s/ev2", d, d, d);
    CHECKF(tl_run(cmd, out, sizeof out) == 0, "%s", out);
    snprintf(p, sizeof p, "%s/ev2/predictions.csv", d);
    CHECK(read_file(p, a, sizeof a) == 0 && strstr(a, "img29.png,,"));
    /* a model for another task is refused */
    snprintf(p, sizeof p, "%s/task2.json", d);
    tl_write_text(p, "{\"name\": \"other\", \"type\": \"multiclass\", \"image_root\": \"data\", \"class_folders\": [\"dark\", \"bright\"]}");
    snprintf(cmd, sizeof cmd, "./skelex eval --model %s/ft/fold0/best --task %s --data-root %s --out %s/ev3", d, p, d, d);
    CHECK(tl_run(cmd, out, sizeof out) == 1 && strstr(out, "was trained for binary"));
}
