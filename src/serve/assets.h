/* assets.h: the page's files compiled into the program (the Makefile
 * generates build/gen/serve_assets.c from src/serve/web/ with
 * src/serve/embed_assets.sh), so the page works offline from the binary. */
#ifndef SKELEX_SERVE_ASSETS_H
#define SKELEX_SERVE_ASSETS_H
#include <stddef.h>

typedef struct {
    const char *name;              /* file name in web/, e.g. "app.js" */
    const unsigned char *data;
    size_t len;
} sv_asset;

extern const sv_asset sv_assets[];
extern const int sv_n_assets;

/* The asset called name, or NULL. */
const sv_asset *sv_asset_find(const char *name);

#endif
