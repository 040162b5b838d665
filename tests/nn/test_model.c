/* test_model.c: the C model against the PyTorch twin (tools/mae_twin.py,
 * faithful to HF ViTMAEForPreTraining, computed in float64): loss, logits,
 * mask, every parameter gradient, and parameters after 3 AdamW steps with
 * gradient clipping; with and without norm_pix_loss. */
#include "io/checkpoint.h"
#include "nn/optim.h"
#include "core/rng.h"
#include "io/safetensors.h"
#include "nn/team.h"
#include "testlib.h"
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* max |a - b| / max(max |b|, 1e-12): the relative max error used throughout */
static double rel_max_err(const float *a, const float *b, size_t n) {
    double num = 0.0, den = 1e-12;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > num) num = d;
        if (fabs(b[i]) > den) den = fabs(b[i]);
    }
    return num / den;
}

static float *read_tensor(const st_file *f, const char *name, size_t expect_numel) {
    const st_tensor *t = st_find(f, name);
    if (!t) { fprintf(stderr, "    fixture lacks %s\n", name); return NULL; }
    if (expect_numel && t->numel != expect_numel) { fprintf(stderr, "    %s: %zu values, want %zu\n", name, t->numel, expect_numel); return NULL; }
    float *x = malloc(sizeof(float) * (t->numel ? t->numel : 1));
    sx_err err;
    if (st_read_f32(f, t, x, &err)) { free(x); return NULL; }
    return x;
}

static double meta_num(const st_file *f, const char *key) {
    const char *v = st_metadata(f, key);
    return v ? atof(v) : 0.0;
}

/* The key bias cannot change attention (softmax ignores a constant added to
 * every score of a row: q.(k + b) - q.k is the same for all keys), so its true
 * gradient is exactly 0 and both implementations return round-off noise.
 * AdamW then turns that noise into steps of about lr. For it we check that
 * the gradient is negligible and the update stays within Adam's step bound. */
static int is_key_bias(const char *name) { return strstr(name, "attention.attention.key.bias") != NULL; }

double tl_worst_grad_err, tl_worst_param_err;  /* reported in the summary */

/* loss_only: the training mode that computes the masked patches' rows only;
 * its rows must equal the reference logits of those patches. */
static void check_twin(const char *dir, int loss_only) {
    char path[512];
    sx_err err;
    mae_model m;
    if (checkpoint_load(dir, &m, &err)) { CHECKF(0, "%s", err.msg); return; }
    m.loss_only = loss_only;
    snprintf(path, sizeof path, "%s/expected.safetensors", dir);
    st_file ex;
    if (st_open(path, &ex, &err)) { CHECKF(0, "%s", err.msg); mae_free(&m); return; }
    const mae_config *c = &m.cfg;
    int N = config_num_patches(c), P = config_patch_dim(c);
    const st_tensor *pv = st_find(&ex, "pixel_values");
    CHECK(pv && pv->ndim == 4);
    int B = pv ? (int)pv->shape[0] : 0;
    float *pixels = read_tensor(&ex, "pixel_values", 0), *noise = read_tensor(&ex, "noise", (size_t)B * N);
    float *loss = read_tensor(&ex, "loss", 1), *logits = read_tensor(&ex, "logits", (size_t)B * N * P);
    float *mask = read_tensor(&ex, "mask", (size_t)B * N), *ids = read_tensor(&ex, "ids_restore", (size_t)B * N);
    float *step_losses = read_tensor(&ex, "step_losses", 0);
    CHECK(pixels && noise && loss && logits && mask && ids && step_losses);
    if (!(pixels && noise && loss && logits && mask && ids && step_losses)) goto out;

    // forward
    CHECK(mae_forward(&m, pixels, noise, B, &err) == 0);
    double loss_rel = fabs(m.loss - loss[0]) / fabs(loss[0]);
    CHECKF(loss_rel < 1e-5, "loss %.9g vs torch %.9g (rel %.2e)", (double)m.loss, (double)loss[0], loss_rel);
    CHECK(m.masked_rows_only == loss_only);
    CHECK(m.dec_shared);  // the first decoder block ran its shared mask-token rows once
    for (int b = 0; b < B && !loss_only; b++) {
        double e = rel_max_err(mae_logits(&m, b), logits + (size_t)b * N * P, (size_t)N * P);
        CHECKF(e < 1e-5, "logits of image %d: rel max err %.2e", b, e);
    }
    int Lm = N - config_len_keep(c), rows = 0;
    for (int b = 0; b < B && loss_only; b++)
        for (int n = 0; n < N; n++) {
            if (mask[b * N + n] == 0.0f) continue;
            double e = rel_max_err(m.pred + (size_t)rows++ * P, logits + ((size_t)b * N + n) * P, (size_t)P);
            CHECKF(e < 1e-5, "logits of image %d, masked patch %d: rel max err %.2e", b, n, e);
        }
    CHECK(rows == (loss_only ? B * Lm : 0));
    for (int i = 0; i < B * N; i++) {
        CHECK(m.mask[i] == mask[i]);
        CHECK(m.ids_restore[i] == (int)ids[i]);
    }

    // backward: every trainable parameter's gradient
    mae_zero_grad(&m);
    mae_backward(&m);
    int ngrads = 0;
    for (int t = 0; t < m.n_info; t++) {
        const param_info *pi = &m.info[t];
        if (pi->flags & (PARAM_FROZEN | PARAM_ABSENT)) continue;
        snprintf(path, sizeof path, "grad.%s", pi->name);
        float *g = read_tensor(&ex, path, pi->numel);
        CHECKF(g != NULL, "no reference gradient for %s", pi->name);
        if (!g) continue;
        if (is_key_bias(pi->name)) {
            const param_info *qb = pi - 1;  // the query bias sits just before
            double scale = 0;
            for (size_t i = 0; i < qb->numel; i++) scale = fmax(scale, fabs(m.grads[qb->offset + i]));
            for (size_t i = 0; i < pi->numel; i++) CHECK(fabs(m.grads[pi->offset + i]) <= 1e-5 * scale);
            free(g);
            continue;
        }
        double e = rel_max_err(m.grads + pi->offset, g, pi->numel);
        if (e > tl_worst_grad_err) tl_worst_grad_err = e;
        CHECKF(e < 1e-4, "gradient of %s: rel max err %.2e", pi->name, e);
        ngrads++;
        free(g);
    }
    CHECK(ngrads > 20);

    // three AdamW steps with clipping, same batch each step
    float *before = malloc(sizeof(float) * m.n_floats);
    memcpy(before, m.params, sizeof(float) * m.n_floats);
    adamw opt;
    adamw_init(&opt, &m, (float)meta_num(&ex, "lr"), (float)meta_num(&ex, "beta1"), (float)meta_num(&ex, "beta2"),
               (float)meta_num(&ex, "eps"), (float)meta_num(&ex, "weight_decay"));
    float max_norm = (float)meta_num(&ex, "max_grad_norm");
    CHECK(max_norm > 0.0f && opt.lr > 0.0f);
    int steps = (int)meta_num(&ex, "steps");
    CHECK(steps == 3);
    for (int s = 0; s < steps; s++) {
        CHECK(mae_forward(&m, pixels, noise, B, &err) == 0);
        double rel = fabs(m.loss - step_losses[s]) / fabs(step_losses[s]);
        CHECKF(rel < 1e-5, "step %d loss %.9g vs torch %.9g", s, (double)m.loss, (double)step_losses[s]);
        mae_zero_grad(&m);
        mae_backward(&m);
        float norm = grad_clip(&m, max_norm);
        if (s == 0) CHECKF(norm > max_norm, "clipping must engage in this fixture (norm %g, max %g)", (double)norm, (double)max_norm);
        adamw_step(&opt, &m);
    }
    for (int t = 0; t < m.n_info; t++) {
        const param_info *pi = &m.info[t];
        snprintf(path, sizeof path, "after.%s", pi->name);
        float *p = read_tensor(&ex, path, pi->numel);
        CHECKF(p != NULL, "no reference parameter for %s", pi->name);
        if (!p) continue;
        if (is_key_bias(pi->name)) {
            for (size_t i = 0; i < pi->numel; i++)
                CHECK(fabsf(m.params[pi->offset + i] - before[pi->offset + i]) <= 3.0f * opt.lr * steps);
            free(p);
            continue;
        }
        double e = rel_max_err(m.params + pi->offset, p, pi->numel);
        if (e > tl_worst_param_err) tl_worst_param_err = e;
        CHECKF(e < 1e-4, "%s after %d steps: rel max err %.2e", pi->name, steps, e);
        free(p);
    }
    fprintf(stderr, "    %s: loss rel err %.2e, worst grad rel err %.2e, worst param rel err %.2e\n", dir, loss_rel,
            tl_worst_grad_err, tl_worst_param_err);
    adamw_free(&opt);
    free(before);
out:
    free(pixels); free(noise); free(loss); free(logits); free(mask); free(ids); free(step_losses);
    st_close(&ex);
    mae_free(&m);
}

TEST(test_twin_pixel_loss) { check_twin("tests/fixtures/twin_pix", 0); }
TEST(test_twin_norm_pix_loss) { check_twin("tests/fixtures/twin_normpix", 0); }
TEST(test_twin_pixel_loss_loss_only) { check_twin("tests/fixtures/twin_pix", 1); }
TEST(test_twin_norm_pix_loss_loss_only) { check_twin("tests/fixtures/twin_normpix", 1); }

TEST(test_sincos_matches_hf) {
    // the fixture's position embeddings were produced by HF's numpy code
    sx_err err;
    mae_model m;
    CHECK(checkpoint_load("tests/fixtures/twin_pix", &m, &err) == 0);
    int g = config_grid(&m.cfg), D = m.cfg.hidden_size, Dd = m.cfg.decoder_hidden_size;
    float *ours = malloc(sizeof(float) * (size_t)(1 + g * g) * (D > Dd ? D : Dd));
    mae_sincos_pos_embed(ours, D, g);
    CHECK(rel_max_err(ours, m.p.pos_embed, (size_t)(1 + g * g) * D) < 1e-6);
    mae_sincos_pos_embed(ours, Dd, g);
    CHECK(rel_max_err(ours, m.p.dec_pos_embed, (size_t)(1 + g * g) * Dd) < 1e-6);
    // and the layout is not symmetric: swapping rows and columns must differ
    CHECK(fabsf(ours[(1 + 1) * Dd] - ours[(1 + g) * Dd]) > 0.1f);
    free(ours);
    mae_free(&m);
}

TEST(test_masking_is_a_permutation) {
    enum { B = 3, N = 49 };
    float noise[B * N], mask[B * N];
    int keep[B * 12], restore[B * N];
    for (int i = 0; i < B * N; i++) noise[i] = (float)((i * 37) % 101) / 101.0f + 0.001f * (float)i;
    mae_masking(noise, B, N, 12, keep, restore, mask);
    for (int b = 0; b < B; b++) {
        int seen[N] = {0};
        float msum = 0;
        for (int n = 0; n < N; n++) { seen[restore[b * N + n]]++; msum += mask[b * N + n]; }
        for (int n = 0; n < N; n++) CHECK(seen[n] == 1);
        CHECK(msum == N - 12);
        for (int j = 0; j < 12; j++) {
            int n = keep[b * 12 + j];
            CHECK(restore[b * N + n] == j);
            CHECK(mask[b * N + n] == 0.0f);
            if (j) CHECK(noise[b * N + keep[b * 12 + j - 1]] < noise[b * N + n]);
        }
    }
}

TEST(test_init_statistics) {
    sx_err err;
    mae_config c;
    mae_model m;
    CHECK(config_preset("tiny", &c, &err) == 0);
    c.decoder_num_hidden_layers = 1; c.num_hidden_layers = 1;
    CHECK(mae_build(&m, &c, &err) == 0);
    mae_init_weights(&m, 7);
    const param_info *q = mae_find_param(&m, "vit.encoder.layer.0.attention.attention.query.weight");
    CHECK(q != NULL);
    double s = 0, s2 = 0;
    for (size_t i = 0; i < q->numel; i++) { s += m.params[q->offset + i]; s2 += (double)m.params[q->offset + i] * m.params[q->offset + i]; }
    double mean = s / q->numel, sd = sqrt(s2 / q->numel - mean * mean);
    CHECK_NEAR(mean, 0.0, 0.002);
    CHECK_NEAR(sd, 0.02, 0.001);
    const param_info *ln = mae_find_param(&m, "vit.layernorm.weight");
    CHECK(ln && m.params[ln->offset] == 1.0f);
    const param_info *pw = mae_find_param(&m, "vit.embeddings.patch_embeddings.projection.weight");
    float bound = sqrtf(6.0f / (768 + 192)), mx = 0;
    for (size_t i = 0; i < pw->numel; i++) mx = fmaxf(mx, fabsf(m.params[pw->offset + i]));
    CHECK(mx <= bound && mx > 0.9f * bound);
    CHECK(mae_count_params(&m) == m.n_floats);
    mae_free(&m);
}

/* The batch split across threads (team.h) gives the whole batch's loss and
 * gradients: against the plain step on the same model, with even and uneven
 * shares, and added onto gradients already there (as accumulation does). */
static void team_vs_plain(int threads, int B) {
    sx_err err;
    mae_config cfg;
    mae_model m;
    CHECK(config_resolve("tests/fixtures/twin_pix/config.json", &cfg, &err) == 0);
    if (mae_build(&m, &cfg, &err)) { CHECKF(0, "%s", err.msg); return; }
    mae_init_weights(&m, 7);
    m.loss_only = 1;
    int N = config_num_patches(&cfg), S = cfg.image_size;
    size_t npx = (size_t)B * cfg.num_channels * S * S;
    float *px = malloc(sizeof(float) * npx), *noise = malloc(sizeof(float) * (size_t)B * N);
    float *ref = malloc(sizeof(float) * m.n_floats), *pre = malloc(sizeof(float) * m.n_floats);
    sx_rng r;
    rng_seed(&r, 3);
    for (size_t i = 0; i < npx; i++) px[i] = rng_normal(&r);
    for (int i = 0; i < B * N; i++) noise[i] = rng_uniform(&r);
    for (size_t i = 0; i < m.n_floats; i++) pre[i] = 0.01f * rng_normal(&r);

    // plain: one forward and backward over the batch, onto pre
    memcpy(m.grads, pre, sizeof(float) * m.n_floats);
    CHECK(mae_forward(&m, px, noise, B, &err) == 0);
    mae_backward(&m);
    float loss = m.loss;
    memcpy(ref, m.grads, sizeof(float) * m.n_floats);

    int saved = omp_get_max_threads();
    omp_set_num_threads(threads);
    mae_team t;
    CHECK(mae_team_init(&t, &m, B, &err) == 0);
    CHECKF(t.n == (threads < B ? threads : B), "team of %d for %d threads, batch %d", t.n, threads, B);
    memcpy(m.grads, pre, sizeof(float) * m.n_floats);
    CHECK(mae_team_step(&t, px, noise, B, &err) == 0);
    omp_set_num_threads(saved);
    CHECKF(fabs(m.loss - loss) <= 1e-6 * fabs(loss), "loss %.9g, plain %.9g", (double)m.loss, (double)loss);
    CHECK(m.grad_scale == 1.0f);
    for (int k = 0; k < m.n_info; k++) {
        const param_info *pi = &m.info[k];
        if (pi->flags & (PARAM_FROZEN | PARAM_ABSENT) || is_key_bias(pi->name)) continue;
        double e = rel_max_err(m.grads + pi->offset, ref + pi->offset, pi->numel);
        CHECKF(e < 1e-5, "%d threads, batch %d: gradient of %s: rel max err %.2e", threads, B, pi->name, e);
    }
    // the replicas see the weights as they change
    m.params[m.info[2].offset] += 1.0f;
    for (int k = 0; k < t.n - 1; k++) CHECK(t.rep[k].p.patch_w[0] == m.p.patch_w[0]);
    mae_team_free(&t);
    free(px); free(noise); free(ref); free(pre);
    mae_free(&m);
}

TEST(test_team_split_equals_whole_batch) {
    team_vs_plain(2, 4);   // even shares
    team_vs_plain(3, 5);   // uneven: 1, 2, 2 images
    team_vs_plain(4, 2);   // more threads than images: two shares
}

TEST(test_team_off_for_one_image_and_when_asked) {
    sx_err err;
    mae_config cfg;
    mae_model m;
    CHECK(config_resolve("tests/fixtures/twin_pix/config.json", &cfg, &err) == 0);
    if (mae_build(&m, &cfg, &err)) { CHECKF(0, "%s", err.msg); return; }
    int saved = omp_get_max_threads();
    omp_set_num_threads(2);
    mae_team t;
    CHECK(mae_team_init(&t, &m, 1, &err) == 0 && t.n == 1 && t.rep == NULL);
    mae_team_free(&t);
    setenv("SKELEX_SPLIT", "0", 1);
    CHECK(mae_team_init(&t, &m, 8, &err) == 0 && t.n == 1);
    mae_team_free(&t);
    unsetenv("SKELEX_SPLIT");
    CHECK(mae_team_init(&t, &m, 8, &err) == 0 && t.n == 2);
    mae_team_free(&t);
    omp_set_num_threads(saved);
    mae_free(&m);
}
