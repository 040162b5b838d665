/* env.h: the environment variables skelex reads, parsed one way: the whole
 * value must be a number (or flag) inside a range, else an error naming the
 * variable, its value and the range. Unset or empty means the default. */
#ifndef SKELEX_ENV_H
#define SKELEX_ENV_H
#include "core/common.h"

/* *out = the integer value of variable name in [lo, hi], or def when it is
 * unset or empty. 0, or -1 with "NAME=VALUE: ..." in err (and *out = def). */
int sx_env_long(const char *name, long lo, long hi, long def, long *out, sx_err *err);

/* A switch: unset or empty -> def; "0" -> 0; "1" -> 1; anything else an error. */
int sx_env_flag(const char *name, int def, int *out, sx_err *err);

/* Check every variable the program reads before any of them is used:
 * OMP_NUM_THREADS an integer in [1, 4096], SKELEX_SPLIT 0|1, SKELEX_PROFILE
 * and SKELEX_NO_PIN "1" (they act by being set). 0, or -1 naming the first
 * bad one. */
int sx_env_check(sx_err *err);

#endif
