/* ValidateVirtualHardDisk for one VHDX file: opens it read-only (which
 * validates the header section, region table, metadata and log), then
 * checks every BAT entry: states valid for the image type, reserved
 * bits, locations inside the file, and that no two blocks and no block
 * and structure overlap.  Changes nothing.  The parent chain is the
 * chain layer's to check (image_check). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <stdarg.h>
#include <unistd.h>

#include "vhdx.h"

struct span { uint64_t off, len, idx; };

static int
cmp_span (const void *a, const void *b)
{
  const struct span *x = a, *y = b;
  return x->off < y->off ? -1 : x->off > y->off;
}

static void
problem (vhdkit_report_fn report, void *opaque, unsigned *n, const char *fmt, ...)
  ATTR_PRINTF (4, 5);
static void
problem (vhdkit_report_fn report, void *opaque, unsigned *n, const char *fmt, ...)
{
  char buf[1024];
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (buf, sizeof buf, fmt, ap);
  va_end (ap);
  (*n)++;
  if (report && *n <= 1000) report (opaque, buf);
  if (report && *n == 1001) report (opaque, "more than 1000 problems; the rest are not listed");
}

int
vhdx_check (const char *path, vhdkit_report_fn report, void *opaque)
{
  unsigned n = 0;
  struct io *io = io_open (path, O_RDONLY, 0);
  if (!io) {
    set_error_errno (errno, "%s: cannot open", path);
    return -1;
  }
  struct vhdx *s;
  struct drv_geometry g;
  struct drv_open_args a = { .path = path, .io = io, .writable = false };
  if (vhdx_open_inst (&a, &s, &g) == -1) {
    uint32_t rc = error_code ();
    /* A file that cannot be read cannot be checked; a broken one is a
     * finding. */
    if (rc == VHDKIT_RC_ACCESS_DENIED || rc == VHDKIT_RC_OUT_OF_MEMORY) return -1;
    problem (report, opaque, &n, "%s", error_message ());
    return 1;
  }
  struct span *sp = malloc ((s->bat_entries + 4) * sizeof *sp);
  size_t ns = 0;
  if (!sp) {
    vhdx_close_inst (s);
    set_error_errno (ENOMEM, "%s: check", path);
    return -1;
  }
  sp[ns++] = (struct span) { 0, MiB, UINT64_MAX };
  sp[ns++] = (struct span) { s->bat_off, s->bat_len, UINT64_MAX - 1 };
  sp[ns++] = (struct span) { s->meta_off, s->meta_len, UINT64_MAX - 2 };
  if (s->log_len)
    sp[ns++] = (struct span) { s->log_off, s->log_len, UINT64_MAX - 3 };
  uint64_t full_chunks = div_round_up (s->data_blocks, s->chunk_ratio);
  for (uint64_t b = 0; b < s->data_blocks; b++) {
    uint64_t e;
    if (vhdx_bat_get (s, payload_index (s, b), &e) == -1) {
      problem (report, opaque, &n, "%s", error_message ());
      break;
    }
    unsigned st = BAT_STATE (e);
    if (BAT_RESERVED (e))
      problem (report, opaque, &n, "%s: BAT entry of block %" PRIu64 " has reserved bits set", path, b);
    if (st == 4)
      problem (report, opaque, &n, "%s: block %" PRIu64 " has the reserved state 4", path, b);
    if (st == PAYLOAD_BLOCK_PARTIALLY_PRESENT && !s->has_parent)
      problem (report, opaque, &n, "%s: block %" PRIu64 " is partially present in an image without a parent", path, b);
    if (st == PAYLOAD_BLOCK_FULLY_PRESENT || st == PAYLOAD_BLOCK_PARTIALLY_PRESENT) {
      uint64_t o = BAT_OFFSET (e), end;
      if (o < MiB || !add_ok (o, s->block_size, &end) || end > s->file_size)
        problem (report, opaque, &n, "%s: block %" PRIu64 " at %" PRIu64 "+%" PRIu32 " lies outside the file (%" PRIu64 " bytes)",
                 path, b, o, s->block_size, s->file_size);
      else
        sp[ns++] = (struct span) { o, s->block_size, b };
    }
  }
  for (uint64_t c = 0; c < full_chunks && sb_index (s, c) < s->bat_entries; c++) {
    uint64_t e;
    if (vhdx_bat_get (s, sb_index (s, c), &e) == -1) break;
    unsigned st = BAT_STATE (e);
    if (st == SB_BLOCK_PRESENT) {
      if (!s->has_parent)
        problem (report, opaque, &n, "%s: chunk %" PRIu64 " has a sector bitmap block in an image without a parent", path, c);
      uint64_t o = BAT_OFFSET (e), end;
      if (o < MiB || !add_ok (o, MiB, &end) || end > s->file_size)
        problem (report, opaque, &n, "%s: the sector bitmap of chunk %" PRIu64 " lies outside the file", path, c);
      else
        sp[ns++] = (struct span) { o, MiB, UINT64_MAX - 4 - c };
    }
    else if (st != SB_BLOCK_NOT_PRESENT)
      problem (report, opaque, &n, "%s: the sector bitmap entry of chunk %" PRIu64 " has the invalid state %u", path, c, st);
    else if (s->has_parent) {
      for (uint64_t b = c * s->chunk_ratio; b < (c + 1) * s->chunk_ratio && b < s->data_blocks; b++) {
        uint64_t pe;
        if (vhdx_bat_get (s, payload_index (s, b), &pe) == 0 &&
            BAT_STATE (pe) == PAYLOAD_BLOCK_PARTIALLY_PRESENT) {
          problem (report, opaque, &n, "%s: block %" PRIu64 " is partially present but chunk %" PRIu64 " has no sector bitmap", path, b, c);
          break;
        }
      }
    }
  }
  qsort (sp, ns, sizeof *sp, cmp_span);
  for (size_t i = 1; i < ns; i++)
    if (sp[i].off < sp[i - 1].off + sp[i - 1].len)
      problem (report, opaque, &n, "%s: file ranges %" PRIu64 "+%" PRIu64 " and %" PRIu64 "+%" PRIu64
               " overlap (%s and %s)", path, sp[i - 1].off, sp[i - 1].len, sp[i].off, sp[i].len,
               sp[i - 1].idx >= UINT64_MAX - 4 ? "a structure" : sp[i - 1].idx > UINT64_MAX / 2 ? "a sector bitmap" : "a payload block",
               sp[i].idx >= UINT64_MAX - 4 ? "a structure" : sp[i].idx > UINT64_MAX / 2 ? "a sector bitmap" : "a payload block");
  free (sp);
  vhdx_close_inst (s);
  return n ? 1 : 0;
}
