/* results.c: see results.h. A doubly linked list in order of use, most
 * recent first; n is small (tens), so lookups walk it. */
#include "serve/results.h"
#include "core/common.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

struct rs_store {
    pthread_mutex_t mu;
    rs_item *head, *tail;
    int n, max_count;
    double max_age;
};

rs_store *rs_new(int max_count, double max_age_s) {
    rs_store *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    pthread_mutex_init(&s->mu, NULL);
    s->max_count = max_count < 1 ? 1 : max_count;
    s->max_age = max_age_s;
    return s;
}

void rs_item_free(rs_item *it) {
    if (!it) return;
    for (int k = 0; k < RS_NBLOBS; k++) free(it->blob[k]);
    free(it);
}

void rs_free(rs_store *s) {
    if (!s) return;
    for (rs_item *it = s->head, *nx; it; it = nx) {
        nx = it->next;
        rs_item_free(it);
    }
    pthread_mutex_destroy(&s->mu);
    free(s);
}

rs_item *rs_item_new(void) {
    rs_item *it = calloc(1, sizeof *it);
    if (!it) return NULL;
    unsigned char r[16];
    size_t got = 0;
    while (got < sizeof r) {
        ssize_t k = getrandom(r + got, sizeof r - got, 0);
        if (k <= 0) {
            free(it);
            return NULL;
        }
        got += (size_t)k;
    }
    for (int i = 0; i < 16; i++) snprintf(it->id + 2 * i, 3, "%02x", r[i]);
    it->created = it->used = sx_now();
    return it;
}

static void unlink_item(rs_store *s, rs_item *it) {
    if (it->prev) it->prev->next = it->next;
    else s->head = it->next;
    if (it->next) it->next->prev = it->prev;
    else s->tail = it->prev;
    it->prev = it->next = NULL;
    s->n--;
}

static void push_front(rs_store *s, rs_item *it) {
    it->prev = NULL;
    it->next = s->head;
    if (s->head) s->head->prev = it;
    s->head = it;
    if (!s->tail) s->tail = it;
    s->n++;
}

static void expire(rs_store *s) {
    double now = sx_now();
    for (rs_item *it = s->head, *nx; it; it = nx) {
        nx = it->next;
        if (now - it->created > s->max_age) {
            unlink_item(s, it);
            rs_item_free(it);
        }
    }
}

void rs_put(rs_store *s, rs_item *it) {
    pthread_mutex_lock(&s->mu);
    expire(s);
    while (s->n >= s->max_count && s->tail) {
        rs_item *old = s->tail;
        unlink_item(s, old);
        rs_item_free(old);
    }
    it->created = it->used = sx_now();
    push_front(s, it);
    pthread_mutex_unlock(&s->mu);
}

void *rs_get(rs_store *s, const char *id, rs_kind k, size_t *len) {
    void *out = NULL;
    *len = 0;
    if ((int)k < 0 || k >= RS_NBLOBS) return NULL;
    pthread_mutex_lock(&s->mu);
    expire(s);
    for (rs_item *it = s->head; it; it = it->next) {
        if (strcmp(it->id, id) != 0) continue;
        if (it->blob[k] && (out = malloc(it->len[k] ? it->len[k] : 1)) != NULL) {
            memcpy(out, it->blob[k], it->len[k]);
            *len = it->len[k];
        }
        it->used = sx_now();
        unlink_item(s, it);
        push_front(s, it);
        break;
    }
    pthread_mutex_unlock(&s->mu);
    return out;
}

int rs_count(rs_store *s) {
    pthread_mutex_lock(&s->mu);
    expire(s);
    int n = s->n;
    pthread_mutex_unlock(&s->mu);
    return n;
}
