/* The kernels are header-only (static inline, compiled where Swift imports them); this file only gives the
 * C target a translation unit and checks that the header compiles on its own. */
#include "n2he_simd.h"
