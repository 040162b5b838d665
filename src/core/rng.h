/* rng.h: a small, seedable, reproducible random number generator
 * (xoshiro256**, seeded through splitmix64). State is plain data so a run can
 * save and restore it. */
#ifndef SKELEX_RNG_H
#define SKELEX_RNG_H
#include <stdint.h>

typedef struct { uint64_t s[4]; } sx_rng;

void     rng_seed(sx_rng *r, uint64_t seed);
uint64_t rng_u64(sx_rng *r);
float    rng_uniform(sx_rng *r);               /* [0, 1), 24 random bits */
float    rng_normal(sx_rng *r);                /* standard normal (Box-Muller) */
uint32_t rng_below(sx_rng *r, uint32_t n);     /* uniform integer in [0, n) */

#endif
