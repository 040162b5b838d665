/* predict_draw.h: the overlay of `skelex predict`: the grey radiograph as
 * RGB with rectangles and short text labels drawn into it (a built-in 5x7
 * bitmap font: digits, letters (lower case drawn as upper case), space and
 * . , : ; - _ % ( ) / + = # ? ' !; anything else is drawn as '?'). */
#ifndef SKELEX_PREDICT_DRAW_H
#define SKELEX_PREDICT_DRAW_H
#include <stdint.h>

typedef struct {
    uint8_t *rgb;     /* w*h*3, owned */
    int w, h;
} draw_canvas;

/* An RGB copy of a grey w x h image; 0 or -1 (out of memory). */
int draw_canvas_from_gray(draw_canvas *c, const uint8_t *gray, int w, int h);
void draw_canvas_free(draw_canvas *c);

/* The outline of [x0, x1) x [y0, y1), `thick` pixels wide inside it, clipped. */
void draw_rect(draw_canvas *c, int x0, int y0, int x1, int y1, int thick, const uint8_t color[3]);
/* A filled rectangle, clipped. */
void draw_fill(draw_canvas *c, int x0, int y0, int x1, int y1, const uint8_t color[3]);
/* Text with its top-left corner at (x, y), each font pixel scale x scale; clipped. */
void draw_text(draw_canvas *c, int x, int y, const char *s, int scale, const uint8_t color[3]);
/* Width and height in pixels of s drawn at scale. */
int draw_text_width(const char *s, int scale);
int draw_text_height(int scale);
/* Whether font pixel (col 0..4, row 0..6) of character ch is set (for tests). */
int draw_glyph_pixel(char ch, int col, int row);

#endif
