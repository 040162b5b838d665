/* predict_fixtures.h: a tiny grouped classifier (the SKELEX layout in
 * miniature: "abnormal" sigmoid, "tumour" softmax over malignant /
 * intermediate / benign / no_tumour, "implant" sigmoid), saved by
 * classifier_save and given its "groups" in config.json; shared by the API,
 * predict and serve tests. */
#ifndef SKELEX_PREDICT_FIXTURES_H
#define SKELEX_PREDICT_FIXTURES_H
#include "adapt/heads.h"
#include "nn/classifier.h"
#include "testlib.h"
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>

#define PFX_N_OUT 6
static const char *const PFX_NAMES[PFX_N_OUT] = {"abnormal", "malignant", "intermediate", "benign", "no_tumour", "implant"};

/* dir: a 32 px classifier with the layout above (seed picks the weights); 0 or -1. */
static inline int pfx_grouped_classifier(const char *dir, uint64_t seed) {
    mae_config cfg = tl_toy_config(32);
    classifier c;
    sx_err e;
    if (classifier_create(&c, NULL, &cfg, TASK_MULTICLASS, PFX_N_OUT, PFX_NAMES, seed, &e)) return -1;
    /* larger head weights than the initialiser's, so regions differ visibly */
    for (int i = 0; i < c.n_out * cfg.hidden_size; i++) c.head_w[i] *= 50;
    int rc = classifier_save(&c, dir, "grouped", &e);
    classifier_free(&c);
    if (rc) return -1;
    char path[700];
    snprintf(path, sizeof path, "%s/config.json", dir);
    char *text = tl_read_file(path, NULL);
    cJSON *r = text ? cJSON_Parse(text) : NULL;
    free(text);
    if (!r) return -1;
    cJSON *gs = cJSON_AddArrayToObject(r, "groups");
    const char *spec[3][6] = {{"abnormal", "sigmoid", "abnormal"},
                              {"tumour", "softmax", "malignant", "intermediate", "benign", "no_tumour"},
                              {"implant", "sigmoid", "implant"}};
    const int n[3] = {1, 4, 1};
    for (int g = 0; g < 3; g++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", spec[g][0]);
        cJSON_AddStringToObject(o, "kind", spec[g][1]);
        cJSON *outs = cJSON_AddArrayToObject(o, "outputs");
        for (int k = 0; k < n[g]; k++) cJSON_AddItemToArray(outs, cJSON_CreateString(spec[g][2 + k]));
        cJSON_AddItemToArray(gs, o);
    }
    char *s = cJSON_Print(r);
    cJSON_Delete(r);
    rc = s ? tl_write_text(path, s) : -1;
    free(s);
    return rc;
}

#endif
