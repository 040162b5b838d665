/* augment.h: the fine-tuning augmentation of the SKELEX downstream
 * protocol, on images already resized to S x S 8-bit (image_cache.h).
 * (The MAE pretraining augmentation, RandomResizedCrop + flip, is data.h's.) */
#ifndef SKELEX_AUGMENT_H
#define SKELEX_AUGMENT_H
#include "core/rng.h"
#include <stdint.h>

/* Applied to an image already resized to S x S 8-bit: rotation by U(-rotate_deg,
 * rotate_deg) degrees about the centre (bilinear, black outside), horizontal
 * flip with probability flip_p, brightness x U(1-b, 1+b), then contrast:
 * blend with the image's mean by U(1-c, 1+c) (torchvision ColorJitter's
 * formulas, in that fixed order); rounded and clamped to 8 bits. Draws: angle,
 * flip, brightness, contrast, always all four, so the stream does not depend
 * on the settings. All zero: a copy. */
typedef struct { double rotate_deg, flip_p, brightness, contrast; } cls_aug;
cls_aug cls_aug_default(void);   /* 10 degrees, 0.5, 0.2, 0.2 */
void cls_augment_u8(const uint8_t *in, int S, const cls_aug *a, sx_rng *r, uint8_t *out);

#endif
