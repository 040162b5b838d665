/* cmd_export.c: `skelex export`: rewrite a model directory's weights in
 * F32, F16 or BF16 (the files to ship or to hand to transformers). */
#include "io/safetensors.h"
#include "core/common.h"
#include "core/json.h"
#include <cjson/cJSON.h>
#include "cli/cli.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *HELP =
    "usage: skelex export --model DIR --out DIR [--dtype f16|bf16|f32] [--force]\n"
    "\n"
    "Write a copy of a model directory (an MAE, ViTMAEForPreTraining, or a\n"
    "classifier, ViTForImageClassification) with its weights in another\n"
    "precision: config.json is copied (its torch_dtype set to the new one) and\n"
    "model.safetensors rewritten tensor by tensor, with the same names, shapes\n"
    "and metadata. Every skelex command and Hugging Face\n"
    "transformers read all three; half precision halves the files (what\n"
    "models/ ships). Training resumes in fp32 from any of them.\n"
    "\n"
    "  --model DIR   the model to read\n"
    "  --out DIR     where to write (created if missing; refused when it holds a\n"
    "                model, unless --force)\n"
    "  --dtype D     f16 (default: 10-bit mantissa, range +-65504), bf16 (8-bit\n"
    "                mantissa, fp32's range) or f32\n"
    "  --force       overwrite a model in --out\n"
    "\n"
    "Prints each precision's largest relative rounding error and the sizes.\n"
    "A weight beyond f16's range refuses f16 (use bf16).\n"
    "exit status: 0 written, 1 failure (unreadable model, unwritable --out,\n"
    "  out of f16's range), 2 usage\n";

int cmd_export(int argc, char **argv) {
    const char *model = NULL, *out = NULL, *dtype_s = "f16";
    int force = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) { fputs(HELP, stdout); return 0; }
        else if (!strcmp(a, "--model")) model = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--out")) out = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--dtype")) dtype_s = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--force")) force = 1;
        else return cli_usage_error("export", "unknown option '%s'", a);
    }
    if (!model || !out) return cli_usage_error("export", "--model and --out are required");
    st_dtype dt;
    if (!strcmp(dtype_s, "f16")) dt = ST_F16;
    else if (!strcmp(dtype_s, "bf16")) dt = ST_BF16;
    else if (!strcmp(dtype_s, "f32")) dt = ST_F32;
    else return cli_usage_error("export", "--dtype is f16, bf16 or f32");

    char src_cfg[4200], src_st[4200], dst_cfg[4200], dst_st[4200];
    snprintf(src_cfg, sizeof src_cfg, "%s/config.json", model);
    snprintf(src_st, sizeof src_st, "%s/model.safetensors", model);
    snprintf(dst_cfg, sizeof dst_cfg, "%s/config.json", out);
    snprintf(dst_st, sizeof dst_st, "%s/model.safetensors", out);
    struct stat st;
    if (!force && cli_holds_model(out)) {
        fprintf(stderr, "skelex export: %s already holds a model (use --force to overwrite)\n", out);
        return 1;
    }
    sx_err err;
    st_file f;   /* the source first: a missing model leaves no empty --out behind */
    if (st_open(src_st, &f, &err)) { fprintf(stderr, "skelex export: %s\n", err.msg); return 1; }
    if (mkdir(out, 0755) && errno != EEXIST) {
        fprintf(stderr, "skelex export: %s: cannot create (%s)\n", out, strerror(errno));
        st_close(&f);
        return 1;
    }
    int rc = 0;
    st_entry *e = calloc((size_t)(f.n ? f.n : 1), sizeof *e);
    float **data = calloc((size_t)(f.n ? f.n : 1), sizeof *data);
    if (!e || !data) { fprintf(stderr, "skelex export: out of memory\n"); rc = 4; goto done; }
    double worst = 0;
    size_t bytes_in = f.size, n_params = 0;
    for (int i = 0; i < f.n && !rc; i++) {
        const st_tensor *t = &f.tensors[i];
        data[i] = malloc(t->numel ? t->numel * sizeof(float) : 1);
        if (!data[i]) { fprintf(stderr, "skelex export: out of memory\n"); rc = 4; break; }
        if (st_read_f32(&f, t, data[i], &err)) { fprintf(stderr, "skelex export: %s\n", err.msg); rc = 1; break; }
        for (size_t j = 0; j < t->numel; j++) {
            float v = data[i][j];
            if (dt == ST_F16 && fabsf(v) > 65504.0f) {
                fprintf(stderr, "skelex export: %s: %s holds %g, beyond f16's range (use --dtype bf16)\n",
                        model, t->name, (double)v);
                rc = 1;
                break;
            }
            float r = dt == ST_F16 ? sx_f16_to_f32(sx_f32_to_f16(v)) : dt == ST_BF16 ? sx_bf16_to_f32(sx_f32_to_bf16(v)) : v;
            if (fabsf(v) > 1e-4f) { double q = fabs((double)r - v) / fabs((double)v); if (q > worst) worst = q; }
        }
        e[i].name = t->name;
        e[i].data = data[i];
        e[i].ndim = t->ndim;
        memcpy(e[i].shape, t->shape, sizeof e[i].shape);
        n_params += t->numel;
    }
    if (!rc) {   /* config.json as it is, but for the dtype transformers reads from it */
        cJSON *cfg = sx_json_load(src_cfg, 1 << 20, &err);
        if (!cfg) { fprintf(stderr, "skelex export: %s\n", err.msg); rc = 1; }
        else {
            const char *tname = dt == ST_F16 ? "float16" : dt == ST_BF16 ? "bfloat16" : "float32";
            if (cJSON_GetObjectItem(cfg, "torch_dtype")) cJSON_ReplaceItemInObject(cfg, "torch_dtype", cJSON_CreateString(tname));
            else cJSON_AddStringToObject(cfg, "torch_dtype", tname);
            if (json_write_file(dst_cfg, cfg, &err)) { fprintf(stderr, "skelex export: %s\n", err.msg); rc = 1; }
            cJSON_Delete(cfg);
        }
    }
    if (!rc && st_write(dst_st, e, f.n, dt, (const char *const *)f.meta_keys, (const char *const *)f.meta_vals, f.n_meta, &err)) {
        fprintf(stderr, "skelex export: %s\n", err.msg);
        rc = 1;
    }
    if (!rc) {
        if (stat(dst_st, &st)) st.st_size = 0;
        printf("wrote %s: %zu tensors, %zu parameters, %s, %.1f MB (from %.1f MB); largest relative rounding "
               "error %.2e (weights above 1e-4 in magnitude)\n",
               out, (size_t)f.n, n_params, st_dtype_name(dt),
               (double)st.st_size / 1e6, (double)bytes_in / 1e6, worst);
    }
done:
    if (data) for (int i = 0; i < f.n; i++) free(data[i]);
    free(data);
    free(e);
    st_close(&f);
    return rc;
}
