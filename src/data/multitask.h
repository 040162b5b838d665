/* multitask.h: multi-head tasks ("type": "multihead", issue 16): one
 * sample list over several ordinary tasks ("sources"), each labelling one
 * group of a head layout (adapt/heads.h), the others masked.
 *
 * The task file: "name", "description", "type": "multihead", "outputs" (or
 * "id2label"), "groups" (heads.h) and "sources", each
 *   {"group": G, "output": O (sigmoid group: class 1 -> 1, class 0 -> 0)
 *    | "class_outputs": {task class: output} (softmax group, every class),
 *    "boxes": {"yolo_dir": DIR} (optional: DIR/<image stem>.txt, YOLO lines;
 *             missing or empty file = no box), "task": {an ordinary task}}.
 * Unknown keys are refused. Relative paths are against the data root.
 *
 * An image listed by several sources (the same resolved path) is one
 * sample with each of their groups known; a source that gives an image a
 * group another source already gave it a different answer is an error.
 * Patients: from the first source that lists the image (its patient
 * column / patient_from, prefixed with the source's index so datasets never
 * share an id); "patient_from": {"name_before": "_JPG"} (the file name up to
 * the first "_JPG", the whole stem when absent) is understood here for
 * sources whose task.c does not know it.
 *
 * Strata for the split (split.c's protocol, through mt->view): when some
 * group is labelled by every source, the sample's answer in it (an output
 * name, or "<output>=0|1" for a sigmoid group; "unknown" when masked);
 * otherwise "<source task name>:<its class>" of the first source listing
 * the image.
 * Not here: images, training (adapt/finetune_heads.h). */
#ifndef SKELEX_MULTITASK_H
#define SKELEX_MULTITASK_H
#include "adapt/heads.h"
#include "data/split.h"
#include "data/task.h"
#include "zeroshot/regions.h"   /* norm_box, pix_box */

#define MT_MAX_BOXES 64

typedef struct {
    char *name;
    head_layout L;
    size_t n;             /* samples */
    float *targets;       /* n x L.n_out */
    uint8_t *known;       /* n x L.n_out, 0/1 */
    int *nbox;            /* n: boxes of each sample */
    norm_box **boxes;     /* n: YOLO boxes (normalised), NULL when none */
    int *source;          /* n: the first source listing the sample */
    int n_sources;
    char **source_names;  /* n_sources task names */
    /* The samples as an ordinary task (path, patient, label = stratum;
     * class_names = the strata; type multiclass) for split.c and records. */
    task view;
} multitask;

/* 1 when the JSON file is a task of type "multihead", 0 otherwise (also
 * when unreadable: task_load then reports it). */
int multitask_is(const char *task_json);

/* Load a multi-head task (flags as task_load_flags). On failure *mt is
 * left empty (multitask_free-safe). */
int multitask_load(const char *task_json, const char *data_root, unsigned flags, multitask *mt, sx_err *err);
void multitask_free(multitask *mt);

/* Sample i's boxes in pixels of a W x H image into out (cap entries);
 * returns how many. */
int multitask_boxes_px(const multitask *mt, size_t i, int W, int H, pix_box *out, int cap);

/* The YOLO boxes of an image: dir/<file stem>.txt (boxes_read_yolo); 0
 * when there is no such file, -1 with err when it is unreadable. */
int multitask_read_yolo(const char *dir, const char *image_path, norm_box *out, int cap, sx_err *err);

#endif
