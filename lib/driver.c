/* Helpers that format drivers share (layer 2). */
#include "driver.h"

bool
drv_extents_add (struct drv_extents *x, uint64_t off, uint64_t len, int what)
{
  if (len == 0) return true;
  if (x->n) {
    struct drv_extent *l = &x->e[x->n - 1];
    if (l->what == what && l->off + l->len == off) {
      l->len += len;
      return true;
    }
  }
  if (x->n == x->max) return false;
  x->e[x->n++] = (struct drv_extent) { off, len, what };
  return true;
}
