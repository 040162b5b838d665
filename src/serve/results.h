/* results.h: the analyses kept in memory for download, bounded by count
 * and by age (least recently used dropped first; nothing touches disk).
 * Thread-safe. */
#ifndef SKELEX_SERVE_RESULTS_H
#define SKELEX_SERVE_RESULTS_H
#include <stddef.h>

typedef enum { RS_OVERLAY = 0, RS_NPY, RS_IMAGE, RS_REPORT, RS_JSON, RS_NBLOBS } rs_kind;

/* One analysis: its id (32 lowercase hex) and its files, each malloc'd;
 * the store owns them after rs_put. */
typedef struct rs_item {
    char id[33];
    void *blob[RS_NBLOBS];
    size_t len[RS_NBLOBS];
    double created, used;      /* monotonic seconds */
    struct rs_item *prev, *next;
} rs_item;

typedef struct rs_store rs_store;

/* A store of at most max_count items, each dropped max_age_s seconds after
 * it was made. NULL on exhaustion. */
rs_store *rs_new(int max_count, double max_age_s);
void rs_free(rs_store *s);

/* A fresh item with a random id (getrandom), its blobs empty. NULL on exhaustion. */
rs_item *rs_item_new(void);
void rs_item_free(rs_item *it);

/* Hand it to the store (which may drop the oldest to make room). */
void rs_put(rs_store *s, rs_item *it);

/* A copy of one blob of item id (malloc'd, the caller frees), or NULL when
 * the id is unknown, expired or that blob is empty. Marks it used. */
void *rs_get(rs_store *s, const char *id, rs_kind k, size_t *len);

/* Items held now (after dropping expired ones). */
int rs_count(rs_store *s);

#endif
