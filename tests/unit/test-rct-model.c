/* Model-based test of resilient change tracking (DESIGN.md §3, §4) through
 * the public API only.
 *
 * Clean phase: random sequences of writes, zeros, discards, grows,
 * checkpoints (every ID is kept), flushes, close+reopen, read-only
 * reopens and disable+enable on small disks (dynamic VHDX with G = 64 KiB,
 * G = 4 KiB, G = 2 MiB, a 4096-byte-sector VHDX, a raw image).  The model
 * keeps, per G-block, the step of its last change and, per 512-byte unit,
 * a tag naming its content.  After every step every live ID is queried
 * over a random window with a random output cap (paging on
 * ProcessedByteLength) and the answer must equal the model exactly
 * (INV-1 and INV-3 in a clean state; a grown area may be reported
 * byte-exact or rounded out to G); every range of kind ZERO must read as
 * zeros; the bytes the op touched and a random window are read back and
 * compared with the byte model; at every reopen every ID is checked over
 * the whole disk and the whole disk is read.  Invalidated IDs (disable)
 * must give 32775, malformed ones 32773, never-issued ones 32775.
 *
 * Crash phase: a setup child builds a tracked image and a log of what it
 * did; a child with VHDKIT_SIM=count learns how many syncs a random op
 * sequence makes; a child with VHDKIT_SIM=crash:n=K:seed=S runs that
 * sequence, appending each op to a log file with write(2)+fsync(2) before
 * issuing it, and must die with exit 99; a verify child reopens the image
 * and checks that every ID (including those returned before the crash)
 * still answers (no 32775: a crash never forces a full backup), that each
 * answer covers the model built from the logs with every logged op counted
 * as done (INV-1) — except the op in flight at the crash, which counts
 * only as far as its data reached the disk (see crash_verify_child) —
 * that every 512-byte unit holds its old content or one written by a
 * logged op, and that IDs made after recovery are exact.
 *
 * Every phase runs in a fork()ed child so that VHDKIT_SIM is read fresh;
 * the parent never calls libvhdkit.
 *
 * Environment:
 *   VHDKIT_RCT_MODEL_STEPS    clean-phase steps in all (default 10000)
 *   VHDKIT_RCT_MODEL_CRASHES  crash trials (default 128)
 *   VHDKIT_RCT_MODEL_SEED     the seed (default: from the clock; printed)
 *   VHDKIT_RCT_MODEL_KEEP     1 = keep the work directory
 *   VHDKIT_RCT_MODEL_DIR      where to put it (default /dev/shm if
 *                             writable, else $TMPDIR, else /tmp)
 *   VHDKIT_RCT_MODEL_TRACE    1 = print every op
 * Exit status: 0 pass, 1 fail (the seed and a rerun command are printed).
 */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/stat.h>

#include "vhdkit.h"

#define MODEL_NAME "rct-model"
#define MODEL_ENV "VHDKIT_RCT_MODEL_"
#define MODEL_PATH_MAX 600
#define MODEL_LASTOP_MAX 256
#include "model-util.h"

/* ---- helpers ---- */

static bool
file_exists (const char *p)
{
  return access (p, F_OK) == 0;
}

/* ---- the model ---- */

struct idrec {
  char id[VHDKIT_RCT_ID_MAX];
  uint64_t step;                /* the model step at which it was made */
};

struct model {
  uint64_t size, max_size;
  uint32_t lss, g;
  uint64_t *touch;              /* per G-block: step of last change, 0 never */
  uint32_t *tag;                /* per 512-byte unit; 0 = zeros */
  uint64_t step;
  struct idrec *ids;            /* live IDs, oldest first */
  size_t nids, capids;
  struct idrec *dead;           /* IDs invalidated by disable */
  size_t ndead, capdead;
  bool newer;                   /* changed since the most recent ID */
  struct { uint64_t step, old_size; } grows[4096];
  size_t ngrows;
};

static void
model_init (struct model *m, uint64_t size, uint64_t max_size, uint32_t lss,
            uint32_t g)
{
  memset (m, 0, sizeof *m);
  m->size = size;
  m->max_size = max_size;
  m->lss = lss;
  m->g = g;
  m->touch = xcalloc ((size_t) (max_size / g + 1), sizeof *m->touch);
  m->tag = xcalloc ((size_t) (max_size / UNIT), sizeof *m->tag);
}

static void
model_free (struct model *m)
{
  free (m->touch);
  free (m->tag);
  free (m->ids);
  free (m->dead);
  memset (m, 0, sizeof *m);
}

static void
model_touch (struct model *m, uint64_t off, uint64_t len)
{
  uint64_t b;

  if (len == 0)
    return;
  for (b = off / m->g; b <= (off + len - 1) / m->g; b++)
    m->touch[b] = m->step;
  m->newer = true;
}

static void
model_write (struct model *m, uint64_t off, uint64_t len, uint32_t tag)
{
  uint64_t u;

  m->step++;
  for (u = off / UNIT; u < (off + len) / UNIT; u++)
    m->tag[u] = tag;
  model_touch (m, off, len);
}

/* Growing changes [old size, new size).  The library may report that
 * byte-exact or rounded out to G (both keep INV-1 and INV-3), so grows are
 * kept as a history and model_expect gives a lower and an upper bound. */
static void
model_grow (struct model *m, uint64_t new_size)
{
  m->step++;
  if (m->ngrows == sizeof m->grows / sizeof m->grows[0]) {
    fprintf (stderr, "too many grows\n");
    exit (2);
  }
  m->grows[m->ngrows].step = m->step;
  m->grows[m->ngrows].old_size = m->size;
  m->ngrows++;
  m->size = new_size;
  m->newer = true;
}

static void
model_add_id (struct model *m, const char *id)
{
  if (m->nids == m->capids) {
    m->capids = m->capids ? 2 * m->capids : 64;
    m->ids = realloc (m->ids, m->capids * sizeof *m->ids);
    if (!m->ids)
      exit (2);
  }
  m->step++;
  snprintf (m->ids[m->nids].id, VHDKIT_RCT_ID_MAX, "%s", id);
  m->ids[m->nids].step = m->step;
  m->nids++;
  m->newer = false;
}

static void
model_kill_ids (struct model *m)
{
  size_t i;

  for (i = 0; i < m->nids; i++) {
    if (m->ndead == m->capdead) {
      m->capdead = m->capdead ? 2 * m->capdead : 64;
      m->dead = realloc (m->dead, m->capdead * sizeof *m->dead);
      if (!m->dead)
        exit (2);
    }
    m->dead[m->ndead++] = m->ids[i];
  }
  m->nids = 0;
  m->newer = false;
}

/* ---- range lists ---- */

struct range { uint64_t off, len; };
struct rlist { struct range *r; size_t n, cap; };

static void
rl_add (struct rlist *l, uint64_t off, uint64_t len)
{
  if (len == 0)
    return;
  if (l->n && l->r[l->n - 1].off + l->r[l->n - 1].len == off) {
    l->r[l->n - 1].len += len;           /* coalesce */
    return;
  }
  if (l->n == l->cap) {
    l->cap = l->cap ? 2 * l->cap : 64;
    l->r = realloc (l->r, l->cap * sizeof *l->r);
    if (!l->r)
      exit (2);
  }
  l->r[l->n].off = off;
  l->r[l->n].len = len;
  l->n++;
}

static void rl_clear (struct rlist *l) { l->n = 0; }

/* The model's answer for an ID made at STEP over [a, b): every answer
 * from LO (what must be reported) up to HI (what may be) is right.  They
 * differ only where a grow's old size is not G-aligned. */
static void
model_expect (const struct model *m, uint64_t step, uint64_t a, uint64_t b,
              struct rlist *lo, struct rlist *hi)
{
  uint64_t blk, ms = UINT64_MAX;
  size_t i;

  rl_clear (lo);
  rl_clear (hi);
  if (a >= b)
    return;
  for (i = 0; i < m->ngrows; i++)
    if (m->grows[i].step > step && m->grows[i].old_size < ms)
      ms = m->grows[i].old_size;
  for (blk = a / m->g; blk <= (b - 1) / m->g; blk++) {
    uint64_t s = blk * m->g, e = s + m->g, ls, hs;
    if (s < a) s = a;
    if (e > b) e = b;
    if (m->touch[blk] > step) {
      rl_add (lo, s, e - s);
      rl_add (hi, s, e - s);
      continue;
    }
    ls = ms > s ? ms : s;                 /* the grown part, exact */
    hs = ms / m->g * m->g > s ? ms / m->g * m->g : s;   /* rounded to G */
    if (ls < e)
      rl_add (lo, ls, e - ls);
    if (hs < e)
      rl_add (hi, hs, e - hs);
  }
}

static void
rl_print (const char *what, const struct rlist *l)
{
  size_t i;

  fprintf (stderr, "  %s (%zu ranges):", what, l->n);
  for (i = 0; i < l->n && i < 24; i++)
    fprintf (stderr, " [%" PRIu64 "+%" PRIu64 ")", l->r[i].off, l->r[i].len);
  fprintf (stderr, "%s\n", l->n > 24 ? " ..." : "");
}

/* Is every byte of WANT inside GOT?  Both sorted and coalesced. */
static bool
rl_covers (const struct rlist *got, const struct rlist *want,
           uint64_t *missing)
{
  size_t i, j = 0;

  for (i = 0; i < want->n; i++) {
    uint64_t s = want->r[i].off, e = s + want->r[i].len;
    while (s < e) {
      while (j < got->n && got->r[j].off + got->r[j].len <= s)
        j++;
      if (j == got->n || got->r[j].off > s) {
        *missing = s;
        return false;
      }
      s = got->r[j].off + got->r[j].len;
    }
  }
  return true;
}

static bool
rl_equal (const struct rlist *a, const struct rlist *b)
{
  return a->n == b->n && (a->n == 0 ||
                          memcmp (a->r, b->r, a->n * sizeof *a->r) == 0);
}

/* LO <= GOT <= HI (as byte sets). */
static bool
rl_between (const struct rlist *got, const struct rlist *lo,
            const struct rlist *hi)
{
  uint64_t x;
  return rl_covers (got, lo, &x) && rl_covers (hi, got, &x);
}

/* ---- queries ---- */

static const char *
rnd_target (void)
{
  switch (rnd_below (3)) {
  case 0: return NULL;
  case 1: return "";
  default: return NULL;
  }
}

static size_t
rnd_cap (void)
{
  switch (rnd_below (8)) {
  case 0: return 1;
  case 1: return 2;
  case 2: return 3;
  case 3: return 1 + (size_t) rnd_below (16);
  case 4: return 1000;
  default: return 0;
  }
}

/* The first byte of [O, O+L) that does not read as zero, or UINT64_MAX:
 * from the byte model when it is exact, else from the disk. */
static uint64_t
zero_kind_violation (struct vhdkit_disk *d, const struct model *m,
                     uint64_t o, uint64_t l, bool use_model)
{
  uint64_t u, i;

  if (use_model) {
    for (u = o / UNIT; u < (o + l) / UNIT; u++)
      if (m->tag[u] != 0)
        return u * UNIT;
    return UINT64_MAX;
  }
  while (l) {
    uint64_t n = l < IOBUF ? l : IOBUF;
    if (vhdkit_disk_pread (d, iobuf, (size_t) n, o, 0) == -1)
      fail_lib ("pread of a ZERO range");
    for (i = 0; i < n; i++)
      if (iobuf[i])
        return o + i;
    o += n;
    l -= n;
  }
  return UINT64_MAX;
}

/* Query ID over [a, a+len) with output cap CAP, paging on processed; check
 * every page's structure, and that the answer equals the model (EXACT) or
 * covers it. */
static void
check_query (struct vhdkit_disk *d, const struct model *m,
             const struct idrec *idr, uint64_t a, uint64_t len, size_t cap,
             bool exact)
{
  static struct rlist got, want, wanthi, page;
  uint64_t off = a, end = a + len;
  unsigned pages = 0;

  qs.queries++;
  rl_clear (&got);
  do {
    struct vhdkit_changes c = VHDKIT_CHANGES_INIT;
    uint64_t rem = end - off;
    const char *why;
    size_t i;

    if (get_page (d, idr->id, rnd_target (), off, rem, cap, &c) == -1)
      fail_lib (pathf ("get_changes(%s, offset %" PRIu64 ", length %" PRIu64
                       ", cap %zu)", idr->id, off, rem, cap));
#define QFAIL(...) do {                                                 \
      fprintf (stderr, "query %s window [%" PRIu64 ", %" PRIu64 ") cap %zu, " \
               "page at %" PRIu64 " (#%u): processed %" PRIu64 ", %zu ranges\n", \
               idr->id, a, end, cap, off, pages, c.processed, c.count); \
      fail (__VA_ARGS__); } while (0)
    if (rem == 0) {
      if (c.processed != 0 || c.count != 0)
        QFAIL ("ByteLength 0 must give processed 0 and no range");
      vhdkit_changes_free (&c);
      break;
    }
    if ((why = page_problem (&c, rem, cap)) != NULL)
      QFAIL ("%s", why);
    rl_clear (&page);
    for (i = 0; i < c.count; i++) {
      uint64_t o = c.offsets[i], l = c.lengths[i];
      if ((why = range_problem (&c, i, off, m->lss, " (not sorted/coalesced)")) != NULL)
        QFAIL ("%s", why);
      /* "zero": the range reads as zeros and need not be read
       * (docs/vhdkit.1.md --kinds): a backup skips reading it. */
      if (c.kinds && c.kinds[i] == VHDKIT_CHANGE_ZERO) {
        uint64_t bad = zero_kind_violation (d, m, o, l, exact);
        if (bad != UINT64_MAX)
          QFAIL ("range %zu [%" PRIu64 "+%" PRIu64 ") is of kind ZERO but byte %"
                 PRIu64 " does not read as zero (a backup that skips it loses data)",
                 i, o, l, bad);
      }
      rl_add (&page, o, l);
      rl_add (&got, o, l);
    }
    if (exact) {
      model_expect (m, idr->step, off, off + c.processed, &want, &wanthi);
      if (!rl_between (&page, &want, &wanthi)) {
        rl_print ("library", &page);
        rl_print ("model  ", &want);
        if (!rl_equal (&want, &wanthi))
          rl_print ("model may", &wanthi);
        QFAIL ("answer differs from the model in [%" PRIu64 ", %" PRIu64 ")",
               off, off + c.processed);
      }
    }
#undef QFAIL
    off += c.processed;
    pages++;
    vhdkit_changes_free (&c);
  } while (off < end);

  model_expect (m, idr->step, a, end, &want, &wanthi);
  if (exact && !rl_between (&got, &want, &wanthi)) {
    rl_print ("library", &got);
    rl_print ("model  ", &want);
    fail ("query %s [%" PRIu64 ", %" PRIu64 ") cap %zu: union differs from the model",
          idr->id, a, end, cap);
  }
  if (!exact) {
    uint64_t missing = 0;
    if (!rl_covers (&got, &want, &missing)) {
      rl_print ("library", &got);
      rl_print ("model  ", &want);
      fail ("FALSE NEGATIVE: query %s [%" PRIu64 ", %" PRIu64 ") cap %zu "
            "misses changed byte %" PRIu64, idr->id, a, end, cap, missing);
    }
  }
}

/* A random query window: sector aligned, inside the disk, sometimes the
 * whole disk, sometimes ending at the end, sometimes empty. */
static void
rnd_window (const struct model *m, uint64_t *a, uint64_t *len)
{
  uint64_t secs = m->size / m->lss, s, n;

  switch (rnd_below (8)) {
  case 0: case 1:
    *a = 0; *len = m->size; return;
  case 2:                               /* ends at the end of the disk */
    s = rnd_below (secs);
    *a = s * m->lss; *len = m->size - *a; return;
  case 3:                               /* starts and ends inside blocks */
    s = rnd_below (secs);
    n = rnd_below (4 * (m->g / m->lss) + 2);
    break;
  case 4:
    if (chance (30)) {
      *a = rnd_below (secs + 1) * m->lss; *len = 0; return;
    }
    s = rnd_below (secs);
    n = 1;
    break;
  default:
    s = rnd_below (secs);
    n = 1 + rnd_below (secs - s);
    break;
  }
  if (s + n > secs)
    n = secs - s;
  *a = s * m->lss;
  *len = n * m->lss;
}

static void
check_all_ids (struct vhdkit_disk *d, const struct model *m, bool full,
               bool exact)
{
  size_t i;

  for (i = 0; i < m->nids; i++) {
    uint64_t a, len;
    if (full) {
      a = 0;
      len = m->size;
    } else
      rnd_window (m, &a, &len);
    check_query (d, m, &m->ids[i], a, len, full ? 0 : rnd_cap (), exact);
  }
}

/* With the default cap and the whole disk, one call must do everything. */
static void
check_one_call (struct vhdkit_disk *d, const struct model *m,
                const struct idrec *idr)
{
  struct vhdkit_changes c = VHDKIT_CHANGES_INIT;

  if (vhdkit_disk_get_changes (d, idr->id, NULL, 0, m->size, 0, &c) == -1)
    fail_lib ("get_changes (whole disk)");
  if (c.processed != m->size)
    fail ("whole-disk query of %s with the default cap processed %" PRIu64
          " of %" PRIu64 " with %zu ranges", idr->id, c.processed, m->size,
          c.count);
  vhdkit_changes_free (&c);
}

static int
changes_rc (struct vhdkit_disk *d, const char *id, const char *target,
            uint64_t off, uint64_t len)
{
  struct vhdkit_changes c = VHDKIT_CHANGES_INIT;
  int r = vhdkit_disk_get_changes (d, id, target, off, len, 0, &c);
  if (r == 0)
    vhdkit_changes_free (&c);
  return r;
}

/* Invalidated IDs: 32775 with a sentence about a full backup. */
static void
check_dead_ids (struct vhdkit_disk *d, const struct model *m, size_t max,
                bool sentence)
{
  size_t i;

  for (i = 0; i < m->ndead && i < max; i++) {
    const struct idrec *idr = &m->dead[rnd_below (m->ndead)];
    expect_rc (VHDKIT_RC_INVALID_STATE,
               changes_rc (d, idr->id, NULL, 0, m->size),
               pathf ("get_changes with invalidated ID %s", idr->id));
    if (sentence && strcasestr (vhdkit_get_error (), "full backup") == NULL)
      fail ("32775 for %s does not say a full backup is needed: %s",
            idr->id, vhdkit_get_error ());
  }
}

/* Malformed and never-issued IDs, misaligned and out-of-range windows,
 * a target on a plain image. */
static void
check_bad_args (struct vhdkit_disk *d, const struct model *m)
{
  static const char *const malformed[] = {
    "", "x", "rctX", "rctX:", "rctX::", "rctY:00000000:0000:0000:0000:000000000000:00000001",
    "rctX:zzzzzzzz:zzzz:zzzz:zzzz:zzzzzzzzzzzz:00000001",
    "rctX:00000000:0000:0000:0000:000000000000",
    "rctX:00000000:0000:0000:0000:000000000000:0000001",
    "rctX:00000000:0000:0000:0000:000000000000:000000001",
    "rctX:00000000:0000:0000:0000:000000000000:0000000g",
    "rctX:00000000:0000:0000:0000:00000000000:000000001",
    " rctX:00000000:0000:0000:0000:000000000000:00000001",
    "rctX:00000000:0000:0000:0000:000000000000:00000001 ",
  };
  char id[VHDKIT_RCT_ID_MAX + 8];
  const char *good;
  size_t i;

  for (i = 0; i < sizeof malformed / sizeof malformed[0]; i++)
    expect_rc (VHDKIT_RC_INVALID_PARAMETER,
               changes_rc (d, malformed[i], NULL, 0, m->size),
               pathf ("get_changes with malformed ID \"%s\"", malformed[i]));
  if (m->nids == 0)
    return;
  good = m->ids[m->nids - 1].id;
  /* A truncated and an extended real ID. */
  snprintf (id, sizeof id, "%s", good);
  id[strlen (id) - 1] = '\0';
  expect_rc (VHDKIT_RC_INVALID_PARAMETER, changes_rc (d, id, NULL, 0, m->size),
             pathf ("get_changes with truncated ID %s", id));
  snprintf (id, sizeof id, "%s0", good);
  expect_rc (VHDKIT_RC_INVALID_PARAMETER, changes_rc (d, id, NULL, 0, m->size),
             pathf ("get_changes with extended ID %s", id));
  /* Well formed, never issued: a later generation, another epoch. */
  snprintf (id, sizeof id, "%s", good);
  {
    char *g = strrchr (id, ':') + 1;
    unsigned long gen = strtoul (g, NULL, 16);
    snprintf (g, 9, "%08lx", gen + 1000);
  }
  expect_rc (VHDKIT_RC_INVALID_STATE, changes_rc (d, id, NULL, 0, m->size),
             pathf ("get_changes with never-issued generation %s", id));
  snprintf (id, sizeof id, "%s", good);
  id[5] = id[5] == '0' ? '1' : '0';
  id[10] = id[10] == 'a' ? 'b' : 'a';
  expect_rc (VHDKIT_RC_INVALID_STATE, changes_rc (d, id, NULL, 0, m->size),
             pathf ("get_changes with an ID of another epoch %s", id));
  /* Windows. */
  expect_rc (VHDKIT_RC_INVALID_PARAMETER, changes_rc (d, good, NULL, 1, m->lss),
             "get_changes at a misaligned offset");
  expect_rc (VHDKIT_RC_INVALID_PARAMETER, changes_rc (d, good, NULL, 0, m->lss + 1),
             "get_changes with a misaligned length");
  expect_rc (VHDKIT_RC_INVALID_PARAMETER, changes_rc (d, good, NULL, m->lss, m->size),
             "get_changes past the end");
  expect_rc (VHDKIT_RC_INVALID_PARAMETER,
             changes_rc (d, good, NULL, m->size + m->lss, 0),
             "get_changes starting past the end");
  expect_rc (VHDKIT_RC_INVALID_PARAMETER,
             changes_rc (d, good, NULL, UINT64_MAX - m->lss + 1, 2 * (uint64_t) m->lss),
             "get_changes with offset+length overflowing");
  if (changes_rc (d, good, NULL, m->size, 0) == -1)
    fail_lib ("get_changes with offset = size, length 0");
  if (changes_rc (d, good, NULL, m->size - m->lss, m->lss) == -1)
    fail_lib ("get_changes of the last sector");
  expect_rc (VHDKIT_RC_NOT_SUPPORTED,
             changes_rc (d, good, "{5f2d5f83-6bd4-4b52-8b60-4d4e9e1c2a11}", 0, m->size),
             "get_changes with a TargetSnapshotId on a plain image");
  expect_rc (VHDKIT_RC_NOT_SUPPORTED, changes_rc (d, good, good, 0, m->size),
             "get_changes with an RCT ID as TargetSnapshotId on a plain image");
}

/* ---- the byte model ---- */

#define WBUF (4u << 20)                 /* the largest op */

static void
check_data (struct vhdkit_disk *d, const struct model *m, uint64_t off,
            uint64_t len)
{
  while (len) {
    uint64_t n = len < IOBUF ? len : IOBUF, u;
    if (vhdkit_disk_pread (d, iobuf, (size_t) n, off, 0) == -1)
      fail_lib (pathf ("pread %" PRIu64 "+%" PRIu64, off, n));
    for (u = 0; u < n / UNIT; u++) {
      uint64_t unit = off / UNIT + u;
      uint64_t t = unit_tag (iobuf + u * UNIT, unit);
      if (t != m->tag[unit])
        fail ("data at %" PRIu64 ": holds %s%" PRIu64 ", model says tag %" PRIu32,
              unit * UNIT, t == UINT64_MAX ? "garbage " : "tag ",
              t == UINT64_MAX ? 0 : t, m->tag[unit]);
    }
    off += n;
    len -= n;
  }
}

/* ---- IDs and status ---- */

static void
check_id_form (const char *id, const char *epoch)
{
  size_t i;
  char e[40];

  if (strlen (id) != 50 || strncmp (id, "rctX:", 5) != 0 || id[41] != ':')
    fail ("RCT ID \"%s\" does not have the form rctX:<epoch>:<8 hex>", id);
  for (i = 42; i < 50; i++)
    if (!strchr ("0123456789abcdefABCDEF", id[i]))
      fail ("RCT ID \"%s\": generation is not 8 hex digits", id);
  snprintf (e, sizeof e, "%s", epoch);
  for (i = 0; e[i]; i++)
    if (e[i] == '-')
      e[i] = ':';
  if (strncasecmp (id + 5, e, 36) != 0)
    fail ("RCT ID \"%s\" does not carry the epoch %s", id, epoch);
}

static void
check_status (struct vhdkit_disk *d, const struct model *m, bool exact)
{
  struct vhdkit_rct_status st = VHDKIT_RCT_STATUS_INIT;

  get_rct_status (d, &st);
  if (!st.enabled)
    fail ("status says tracking is disabled");
  if (st.granularity != m->g)
    fail ("status granularity %" PRIu32 ", enabled with %" PRIu32,
          st.granularity, m->g);
  if (m->nids == 0)
    return;
  if (strcmp (st.most_recent_id, m->ids[m->nids - 1].id) != 0)
    fail ("status MostRecentId \"%s\", the last checkpoint returned \"%s\"",
          st.most_recent_id, m->ids[m->nids - 1].id);
  if (exact ? st.newer_changes != m->newer : (m->newer && !st.newer_changes))
    fail ("status NewerChanges %d, model says %d", st.newer_changes, m->newer);
}

static void
do_checkpoint (struct vhdkit_disk *d, struct model *m)
{
  struct vhdkit_rct_status before = VHDKIT_RCT_STATUS_INIT, after = VHDKIT_RCT_STATUS_INIT;
  char id[VHDKIT_RCT_ID_MAX];
  unsigned long gen;

  get_rct_status (d, &before);
  memset (id, 0, sizeof id);
  if (vhdkit_rct_checkpoint (d, id) == -1)
    fail_lib ("rct_checkpoint");
  check_id_form (id, before.epoch);
  gen = strtoul (id + 42, NULL, 16);
  if (gen != before.generation)
    fail ("checkpoint returned generation %lu, status said %" PRIu32
          " was being written", gen, before.generation);
  get_rct_status (d, &after);
  if (after.generation <= before.generation)
    fail ("generation did not advance after a checkpoint (%" PRIu32 " -> %" PRIu32 ")",
          before.generation, after.generation);
  if (strcmp (after.epoch, before.epoch) != 0)
    fail ("a checkpoint changed the epoch");
  if (m->nids && strcmp (id, m->ids[m->nids - 1].id) == 0)
    fail ("checkpoint returned the previous ID again: %s", id);
  model_add_id (m, id);
  TRACE ("  -> %s (model step %" PRIu64 ")", id, m->step);
  if (after.newer_changes)
    fail ("NewerChanges is set right after a checkpoint");
  if (strcmp (after.most_recent_id, id) != 0)
    fail ("MostRecentId %s is not the ID just returned %s",
          after.most_recent_id, id);
}

/* ---- configurations ---- */

struct config {
  const char *name;
  bool raw;
  uint32_t lss, g, block;
  int type;
  uint64_t size, max_size;
};

static const struct config configs[] = {
  { "vhdx-dynamic-G64K", false, 512, 64 * 1024, 0, VHDKIT_TYPE_DYNAMIC, 48u << 20, 64u << 20 },
  { "vhdx-dynamic-1Mblk-G4K", false, 512, 4096, 1u << 20, VHDKIT_TYPE_DYNAMIC, 48u << 20, 64u << 20 },
  { "raw-G64K", true, 512, 64 * 1024, 0, 0, 48u << 20, 64u << 20 },
  { "vhdx-dynamic-1Mblk-G2M", false, 512, 2u << 20, 1u << 20, VHDKIT_TYPE_DYNAMIC, 40u << 20, 64u << 20 },
  { "vhdx-4Ksector-G4K", false, 4096, 4096, 1u << 20, VHDKIT_TYPE_DYNAMIC, 32u << 20, 48u << 20 },
  { "vhdx-fixed-G64K", false, 512, 64 * 1024, 1u << 20, VHDKIT_TYPE_FIXED, 32u << 20, 48u << 20 },
};
#define NCONFIGS (sizeof configs / sizeof configs[0])

/* Smaller disks for the crash phase (copied for every trial). */
static const struct config crash_configs[] = {
  { "crash-vhdx-1Mblk-G64K", false, 512, 64 * 1024, 1u << 20, VHDKIT_TYPE_DYNAMIC, 16u << 20, 16u << 20 },
  { "crash-vhdx-1Mblk-G4K", false, 512, 4096, 1u << 20, VHDKIT_TYPE_DYNAMIC, 16u << 20, 16u << 20 },
  { "crash-raw-G64K", true, 512, 64 * 1024, 0, 0, 16u << 20, 16u << 20 },
};
#define NCRASHCONFIGS (sizeof crash_configs / sizeof crash_configs[0])

static void
image_path (char *buf, const char *sub, const struct config *c)
{
  snprintf (buf, 600, "%s/%s/img.%s", g_dir, sub, c->raw ? "img" : "vhdx");
}

static void
create_image (const char *path, const struct config *c, uint64_t size)
{
  struct vhdkit_create_params p = VHDKIT_CREATE_PARAMS_INIT;

  memset (&p, 0, sizeof p);
  p.struct_size = sizeof p;
  p.format = c->raw ? VHDKIT_FORMAT_RAW : VHDKIT_FORMAT_VHDX;
  p.type = c->type;
  p.size = size;
  p.block_size = c->block;
  p.logical_sector_size = c->lss;
  if (vhdkit_disk_create (path, &p) == -1)
    fail_lib (pathf ("create %s", path));
}

static struct vhdkit_disk *
open_disk (const char *path, const struct config *c, unsigned flags)
{
  struct vhdkit_disk *d = vhdkit_disk_open (path, flags | (c->raw ? VHDKIT_OPEN_RAW : 0));

  if (d == NULL)
    fail_lib (pathf ("open %s (%s)", path, flags & VHDKIT_OPEN_RDWR ? "rw" : "ro"));
  return d;
}

static void
close_disk (struct vhdkit_disk *d)
{
  if (vhdkit_disk_close (d) == -1)
    fail_lib ("close");
}

/* A random op range: small, crossing a G boundary, whole blocks, large,
 * or near the previous one. */
static void
rnd_range (const struct model *m, uint64_t *off, uint64_t *len)
{
  rnd_range_in (m->size, m->g, m->lss, WBUF, off, len);
}

/* ---- clean phase ---- */

static void
op_write (struct vhdkit_disk *d, struct model *m, int kind, uint64_t off,
          uint64_t len, uint32_t tag)
{
  static const char *const names[] = { "write", "zero", "discard" };
  int r;

  setop ("%s %" PRIu64 "+%" PRIu64 " (step %" PRIu64 ")",
            names[kind], off, len, m->step + 1);
  if (kind == 0) {
    fill_pattern (wbuf, off, len, tag);
    r = vhdkit_disk_pwrite (d, wbuf, (size_t) len, off, 0);
  } else if (kind == 1)
    r = vhdkit_disk_zero (d, len, off, 0);
  else
    r = vhdkit_disk_discard (d, len, off, 0);
  if (r == -1)
    fail_lib (names[kind]);
  model_write (m, off, len, kind == 0 ? tag : 0);
}

static void
clean_round (const struct config *c, unsigned round, uint64_t steps)
{
  char path[600];
  struct vhdkit_disk *d, *d2;
  struct model m;
  uint64_t s, off, len;
  double t0 = now_s ();
  char sub[32];

  snprintf (sub, sizeof sub, "clean%u", round);
  mkdir (pathf ("%s/%s", g_dir, sub), 0755);
  image_path (path, sub, c);
  model_init (&m, c->size, c->max_size, c->lss, c->g);
  create_image (path, c, c->size);
  d = open_disk (path, c, VHDKIT_OPEN_RDWR);
  setop ("rct_enable G=%" PRIu32, c->g);
  if (vhdkit_rct_enable (d, c->g) == -1)
    fail_lib ("rct_enable");
  check_status (d, &m, true);
  expect_rc (VHDKIT_RC_INVALID_STATE, vhdkit_rct_enable (d, c->g),
             "enabling tracking twice");
  if (!file_exists (pathf ("%s.rct", path)))
    fail ("no %s.rct after enabling tracking", path);
  /* A second writer on the same image (INV-5). */
  d2 = vhdkit_disk_open (path, VHDKIT_OPEN_RDWR | (c->raw ? VHDKIT_OPEN_RAW : 0));
  if (d2 != NULL) {
    vhdkit_disk_close (d2);
    fail ("a second read-write open of a held image succeeded");
  }
  if (vhdkit_get_error_code () != VHDKIT_RC_IN_USE)
    fail ("a second writer got %" PRIu32 ", expected 32774: %s",
          vhdkit_get_error_code (), vhdkit_get_error ());

  for (s = 0; s < steps; s++) {
    unsigned p = (unsigned) rnd_below (1000);

    snprintf (g_ctx, sizeof g_ctx, "clean round %u config %s step %" PRIu64
              " ids %zu", round, c->name, s, m.nids);
    if (p < 450) {                       /* write */
      rnd_range (&m, &off, &len);
      op_write (d, &m, 0, off, len, (uint32_t) m.step + 1);
      check_data (d, &m, off, len);
    } else if (p < 530) {
      rnd_range (&m, &off, &len);
      op_write (d, &m, 1, off, len, 0);
      check_data (d, &m, off, len);
    } else if (p < 610) {
      rnd_range (&m, &off, &len);
      op_write (d, &m, 2, off, len, 0);
      check_data (d, &m, off, len);
    } else if (p < 720) {
      setop ("checkpoint (step %" PRIu64 ")", m.step + 1);
      do_checkpoint (d, &m);
      check_one_call (d, &m, &m.ids[m.nids - 1]);
    } else if (p < 760) {
      setop ("flush");
      if (vhdkit_disk_flush (d) == -1)
        fail_lib ("flush");
    } else if (p < 800) {               /* close + reopen */
      setop ("close+reopen");
      close_disk (d);
      d = open_disk (path, c, VHDKIT_OPEN_RDWR);
      {
        struct vhdkit_rct_status st = VHDKIT_RCT_STATUS_INIT;
        get_rct_status (d, &st);
        if (st.recovered)
          fail ("Recovered is set after a clean close");
      }
      check_status (d, &m, true);
      check_all_ids (d, &m, true, true);
      check_data (d, &m, 0, m.size);
    } else if (p < 815) {               /* read-only reopen */
      char id[VHDKIT_RCT_ID_MAX];
      setop ("read-only reopen");
      close_disk (d);
      d = open_disk (path, c, VHDKIT_OPEN_RDONLY);
      check_status (d, &m, true);
      check_all_ids (d, &m, false, true);
      if (vhdkit_rct_checkpoint (d, id) != -1)
        fail ("a checkpoint on a read-only handle succeeded");
      close_disk (d);
      d = open_disk (path, c, VHDKIT_OPEN_RDWR);
      check_all_ids (d, &m, true, true);
    } else if (p < 825) {               /* grow */
      uint64_t ns = m.size + (1 + rnd_below (64)) * (uint64_t) m.lss *
        (chance (50) ? 1 : m.g / m.lss);
      if (ns > m.max_size)
        continue;
      setop ("grow %" PRIu64 " -> %" PRIu64, m.size, ns);
      if (vhdkit_disk_resize (d, ns) == -1)
        fail_lib ("resize");
      model_grow (&m, ns);
      check_all_ids (d, &m, true, true);
      check_data (d, &m, 0, m.size);
    } else if (p < 826) {               /* disable, write untracked, enable */
      setop ("disable");
      if (vhdkit_rct_disable (d) == -1)
        fail_lib ("rct_disable");
      model_kill_ids (&m);
      if (file_exists (pathf ("%s.rct", path)) || file_exists (pathf ("%s.mrt", path)))
        fail ("tracking files are left after disable");
      {
        struct vhdkit_rct_status st = VHDKIT_RCT_STATUS_INIT;
        get_rct_status (d, &st);
        if (st.enabled)
          fail ("status says enabled after disable");
      }
      check_dead_ids (d, &m, 3, false);
      rnd_range (&m, &off, &len);
      op_write (d, &m, 0, off, len, (uint32_t) m.step + 1);
      if (chance (50)) {
        close_disk (d);
        d = open_disk (path, c, VHDKIT_OPEN_RDWR);
      }
      setop ("enable after disable");
      if (vhdkit_rct_enable (d, c->g) == -1)
        fail_lib ("rct_enable after disable");
      check_dead_ids (d, &m, 5, true);
    } else if (p < 840) {
      setop ("bad arguments");
      check_bad_args (d, &m);
      check_dead_ids (d, &m, 2, true);
    } else {                            /* a burst of small writes */
      unsigned k, nk = 2 + (unsigned) rnd_below (20);
      for (k = 0; k < nk; k++) {
        rnd_range (&m, &off, &len);
        if (len > 16 * m.lss)
          len = 16 * m.lss;
        op_write (d, &m, (int) rnd_below (3) == 2 ? 1 : 0, off, len,
                  (uint32_t) m.step + 1);
      }
    }
    /* Every step: every ID over a random window with a random cap, and
     * a random window of data. */
    check_all_ids (d, &m, false, true);
    rnd_window (&m, &off, &len);
    if (len > (1u << 20))
      len = 1u << 20;
    check_data (d, &m, off, len);
  }
  snprintf (g_ctx, sizeof g_ctx, "clean round %u config %s final", round, c->name);
  check_status (d, &m, true);
  close_disk (d);
  d = open_disk (path, c, VHDKIT_OPEN_RDWR);
  check_all_ids (d, &m, true, true);
  check_data (d, &m, 0, m.size);
  close_disk (d);
  if (!c->raw && vhdkit_check (path, NULL, NULL) != 0)
    fail ("vhdkit_check reports problems after the round");
  fprintf (stderr, "# clean round %u (%s): %" PRIu64 " steps, %zu live + %zu "
           "invalidated IDs, %" PRIu64 " queries (%" PRIu64 " calls), %.1fs\n",
           round, c->name, steps, m.nids, m.ndead, qs.queries, qs.calls,
           now_s () - t0);
  model_free (&m);
}

/* ---- crash phase ---- */

enum { R_WRITE = 1, R_ZERO, R_DISCARD, R_CKPT_BEGIN, R_CKPT_DONE, R_FLUSH,
       R_REOPEN, R_EPOCH };

struct rec {
  uint32_t kind, tag;
  uint64_t off, len;
  char id[VHDKIT_RCT_ID_MAX];
};

static int
log_open (const char *p, bool trunc)
{
  int fd = open (p, O_WRONLY | O_CREAT | O_APPEND | (trunc ? O_TRUNC : 0), 0644);
  if (fd == -1) {
    perror (p);
    exit (2);
  }
  return fd;
}

static void
log_rec (int fd, const struct rec *r)
{
  if (write (fd, r, sizeof *r) != (ssize_t) sizeof *r || fsync (fd) == -1) {
    perror ("log");
    exit (2);
  }
}

static struct rec *
log_read (const char *p, size_t *n)
{
  struct stat sb;
  struct rec *r;
  int fd = open (p, O_RDONLY);

  *n = 0;
  if (fd == -1)
    return NULL;
  if (fstat (fd, &sb) == -1)
    exit (2);
  r = xcalloc ((size_t) sb.st_size / sizeof *r + 1, sizeof *r);
  if (read (fd, r, (size_t) sb.st_size) != sb.st_size)
    exit (2);
  close (fd);
  *n = (size_t) sb.st_size / sizeof *r;
  return r;
}

static void
apply_rec (struct model *m, const struct rec *r)
{
  switch (r->kind) {
  case R_WRITE: model_write (m, r->off, r->len, r->tag); break;
  case R_ZERO: case R_DISCARD: model_write (m, r->off, r->len, 0); break;
  case R_CKPT_DONE: model_add_id (m, r->id); break;
  default: break;
  }
}

/* Run a random op sequence on PATH, logging each op to LOGFD before it
 * is issued (the crash child, the count child and the setup child). */
static void
run_ops (const char *path, const struct config *c, struct model *m,
         unsigned nops, int logfd, bool enable)
{
  struct vhdkit_disk *d = open_disk (path, c, VHDKIT_OPEN_RDWR);
  unsigned i;

  if (enable) {
    struct vhdkit_rct_status st = VHDKIT_RCT_STATUS_INIT;
    struct rec r;
    if (vhdkit_rct_enable (d, c->g) == -1)
      fail_lib ("rct_enable");
    get_rct_status (d, &st);
    memset (&r, 0, sizeof r);
    r.kind = R_EPOCH;
    snprintf (r.id, sizeof r.id, "%s", st.epoch);
    log_rec (logfd, &r);
  }
  for (i = 0; i < nops; i++) {
    unsigned p = (unsigned) rnd_below (100);
    struct rec r;

    memset (&r, 0, sizeof r);
    if (p < 55) {
      r.kind = R_WRITE;
    } else if (p < 65) {
      r.kind = R_ZERO;
    } else if (p < 72) {
      r.kind = R_DISCARD;
    } else if (p < 85) {
      r.kind = R_CKPT_BEGIN;
    } else if (p < 93) {
      r.kind = R_FLUSH;
    } else {
      r.kind = R_REOPEN;
    }
    if (r.kind <= R_DISCARD) {
      rnd_range (m, &r.off, &r.len);
      r.tag = (uint32_t) (rnd () | 0x1000000u) & 0x7fffffffu;
    }
    setop ("crash-phase op %u kind %" PRIu32, i, r.kind);
    log_rec (logfd, &r);
    switch (r.kind) {
    case R_WRITE:
      fill_pattern (wbuf, r.off, r.len, r.tag);
      if (vhdkit_disk_pwrite (d, wbuf, (size_t) r.len, r.off, 0) == -1)
        fail_lib ("write");
      break;
    case R_ZERO:
      if (vhdkit_disk_zero (d, r.len, r.off, 0) == -1)
        fail_lib ("zero");
      break;
    case R_DISCARD:
      if (vhdkit_disk_discard (d, r.len, r.off, 0) == -1)
        fail_lib ("discard");
      break;
    case R_CKPT_BEGIN:
      if (vhdkit_rct_checkpoint (d, r.id) == -1)
        fail_lib ("checkpoint");
      r.kind = R_CKPT_DONE;
      log_rec (logfd, &r);
      break;
    case R_FLUSH:
      if (vhdkit_disk_flush (d) == -1)
        fail_lib ("flush");
      break;
    case R_REOPEN:
      close_disk (d);
      d = open_disk (path, c, VHDKIT_OPEN_RDWR);
      break;
    }
    apply_rec (m, &r);
  }
  close_disk (d);
}

/* Create DIR or remove the files in it. */
static void
clear_dir (const char *d_)
{
  char d[600];
  DIR *dir;
  struct dirent *e;

  snprintf (d, sizeof d, "%s", d_);
  mkdir (d, 0755);
  dir = opendir (d);
  while (dir && (e = readdir (dir)) != NULL)
    if (e->d_name[0] != '.')
      unlink (pathf ("%s/%s", d, e->d_name));
  if (dir)
    closedir (dir);
}

struct crash_job {
  const struct config *c;
  uint64_t setup_seed, ops_seed, verify_seed;
  unsigned setup_ops, crash_ops;
  unsigned trial;
  uint64_t k, sim_seed;
};

static void
crash_setup_child (void *arg)
{
  struct crash_job *j = arg;
  struct model m;
  char path[600];
  int fd;

  image_path (path, "work", j->c);
  rng = j->setup_seed;
  snprintf (g_ctx, sizeof g_ctx, "crash setup config %s", j->c->name);
  clear_dir (pathf ("%s/work", g_dir));
  model_init (&m, j->c->size, j->c->size, j->c->lss, j->c->g);
  create_image (path, j->c, j->c->size);
  fd = log_open (pathf ("%s/base.log", g_dir), true);
  run_ops (path, j->c, &m, j->setup_ops, fd, true);
  close (fd);
  model_free (&m);
}

static void
crash_ops_child (void *arg)
{
  struct crash_job *j = arg;
  struct model m;
  struct rec *base;
  size_t nbase, i;
  char path[600];
  int fd;

  /* The model of the base gives rnd_range the disk geometry. */
  base = log_read (pathf ("%s/base.log", g_dir), &nbase);
  model_init (&m, j->c->size, j->c->size, j->c->lss, j->c->g);
  for (i = 0; i < nbase; i++)
    apply_rec (&m, &base[i]);
  rng = j->ops_seed;
  snprintf (g_ctx, sizeof g_ctx, "crash child config %s trial %u K=%" PRIu64,
            j->c->name, j->trial, j->k);
  fd = log_open (pathf ("%s/crash.log", g_dir), true);
  image_path (path, "work", j->c);
  run_ops (path, j->c, &m, j->crash_ops, fd, false);
  close (fd);
  free (base);
  model_free (&m);
}

static void
crash_verify_child (void *arg)
{
  struct crash_job *j = arg;
  const struct config *c = j->c;
  char path[600];
  struct model m;
  struct rec *base, *cr, *inflight;
  size_t nbase, ncr, i, nold;
  uint32_t *basetag;
  struct vhdkit_disk *d;
  struct vhdkit_rct_status st = VHDKIT_RCT_STATUS_INIT;
  char epoch[40] = "";
  bool pending_ckpt = false;
  uint64_t u, off, len;
  unsigned k;

  image_path (path, "work", c);
  snprintf (g_ctx, sizeof g_ctx, "crash verify config %s trial %u "
            "VHDKIT_SIM=crash:n=%" PRIu64 ":seed=%" PRIu64, c->name, j->trial,
            j->k, j->sim_seed);
  setop ("reopen after the crash");
  rng = j->verify_seed;
  base = log_read (pathf ("%s/base.log", g_dir), &nbase);
  cr = log_read (pathf ("%s/crash.log", g_dir), &ncr);
  model_init (&m, c->size, c->size, c->lss, c->g);
  for (i = 0; i < nbase; i++) {
    apply_rec (&m, &base[i]);
    if (base[i].kind == R_EPOCH)
      snprintf (epoch, sizeof epoch, "%s", base[i].id);
  }
  basetag = xcalloc ((size_t) (m.size / UNIT), sizeof *basetag);
  memcpy (basetag, m.tag, (size_t) (m.size / UNIT) * sizeof *basetag);
  /* Every logged op counts as done, except the one in flight at the
   * crash (the last one logged) if it is a write, zero or discard: the
   * crash may have come before any of it reached the disk or the
   * tracking files (say, at the sync of its write-ahead mark), and then
   * nothing changed.  Whatever of it did reach the disk must be reported:
   * below, every unit of its range whose content is not what the ops
   * before it left there makes its block count as changed. */
  inflight = ncr > 0 && cr[ncr - 1].kind >= R_WRITE &&
    cr[ncr - 1].kind <= R_DISCARD ? &cr[ncr - 1] : NULL;
  for (i = 0; i < ncr; i++) {
    if (&cr[i] == inflight)
      break;
    apply_rec (&m, &cr[i]);
    if (cr[i].kind == R_CKPT_BEGIN)
      pending_ckpt = true;
    else if (cr[i].kind == R_CKPT_DONE)
      pending_ckpt = false;
  }

  d = open_disk (path, c, VHDKIT_OPEN_RDWR);
  if (inflight) {
    uint64_t landed = 0;
    m.step++;
    for (off = inflight->off; off < inflight->off + inflight->len; off += IOBUF) {
      uint64_t n = inflight->off + inflight->len - off;
      if (n > IOBUF)
        n = IOBUF;
      if (vhdkit_disk_pread (d, iobuf, (size_t) n, off, 0) == -1)
        fail_lib ("pread after the crash");
      for (u = 0; u < n / UNIT; u++) {
        uint64_t unit = off / UNIT + u;
        if (unit_tag (iobuf + u * UNIT, unit) != m.tag[unit]) {
          model_touch (&m, unit * UNIT, UNIT);
          landed++;
        }
      }
    }
    TRACE ("in-flight op %" PRIu32 " %" PRIu64 "+%" PRIu64 ": %" PRIu64
           " units differ from before it", inflight->kind, inflight->off,
           inflight->len, landed);
  }
  get_rct_status (d, &st);
  if (!st.enabled)
    fail ("tracking is disabled after a crash");
  if (strcmp (st.epoch, epoch) != 0)
    fail ("a crash started a new epoch (%s -> %s): that forces a full backup",
          epoch, st.epoch);
  if (!pending_ckpt && m.nids &&
      strcmp (st.most_recent_id, m.ids[m.nids - 1].id) != 0)
    fail ("MostRecentId after the crash is \"%s\", the last checkpoint returned \"%s\"",
          st.most_recent_id, m.ids[m.nids - 1].id);
  if (!pending_ckpt && m.newer && !st.newer_changes)
    fail ("NewerChanges is clear after a crash although writes followed the last checkpoint");
  /* Every ID answers, and covers the model. */
  for (i = 0; i < m.nids; i++) {
    check_query (d, &m, &m.ids[i], 0, m.size, rnd_cap (), false);
    rnd_window (&m, &off, &len);
    check_query (d, &m, &m.ids[i], off, len, rnd_cap (), false);
  }
  /* Data: every unit holds its base content or one a logged op wrote. */
  for (off = 0; off < m.size; off += IOBUF) {
    uint64_t n = m.size - off < IOBUF ? m.size - off : IOBUF;
    if (vhdkit_disk_pread (d, iobuf, (size_t) n, off, 0) == -1)
      fail_lib ("pread after the crash");
    for (u = 0; u < n / UNIT; u++) {
      uint64_t unit = off / UNIT + u, t = unit_tag (iobuf + u * UNIT, unit);
      bool ok = t == basetag[unit];
      for (i = 0; !ok && i < ncr; i++)
        if (cr[i].kind >= R_WRITE && cr[i].kind <= R_DISCARD &&
            unit >= cr[i].off / UNIT && unit < (cr[i].off + cr[i].len) / UNIT &&
            t == (cr[i].kind == R_WRITE ? cr[i].tag : 0))
          ok = true;
      if (!ok)
        fail ("data at %" PRIu64 " after the crash is %s%" PRIu64
              ": neither the old content nor any logged write", unit * UNIT,
              t == UINT64_MAX ? "garbage " : "tag ", t == UINT64_MAX ? 0 : t);
    }
  }
  /* The disk's content is now known exactly: make the model say so, go
   * on with clean ops, and check that IDs made from now on are exact. */
  for (off = 0; off < m.size; off += IOBUF) {
    uint64_t n = m.size - off < IOBUF ? m.size - off : IOBUF;
    if (vhdkit_disk_pread (d, iobuf, (size_t) n, off, 0) == -1)
      fail_lib ("pread");
    for (u = 0; u < n / UNIT; u++)
      m.tag[off / UNIT + u] = (uint32_t) unit_tag (iobuf + u * UNIT, off / UNIT + u);
  }
  nold = m.nids;
  do_checkpoint (d, &m);
  for (k = 0; k < 12; k++) {
    rnd_range (&m, &off, &len);
    op_write (d, &m, (int) rnd_below (3), off, len, (uint32_t) (rnd () | 1) & 0x7fffffffu);
    if (k == 5)
      do_checkpoint (d, &m);
  }
  for (k = 0; k < 2; k++) {
    for (i = 0; i < m.nids; i++) {
      rnd_window (&m, &off, &len);
      check_query (d, &m, &m.ids[i], 0, m.size, rnd_cap (), i >= nold);
      check_query (d, &m, &m.ids[i], off, len, rnd_cap (), i >= nold);
    }
    check_data (d, &m, 0, m.size);
    close_disk (d);
    d = open_disk (path, c, VHDKIT_OPEN_RDWR);
    get_rct_status (d, &st);
    if (st.recovered)
      fail ("Recovered is set after a clean close that followed recovery");
  }
  close_disk (d);
  if (!c->raw && vhdkit_check (path, NULL, NULL) != 0)
    fail ("vhdkit_check reports problems after recovery");
  free (base);
  free (cr);
  free (basetag);
  model_free (&m);
}

/* Build the starting image in work/ afresh (the same ops from the same
 * seed each time; only the epoch differs).  Not a copy: a copied raw
 * image has another inode and ctime, which tracking rightly takes for a
 * foreign writer. */
static int
setup_work (struct crash_job *j)
{
  char why[64];
  int st = in_child (NULL, NULL, 600, crash_setup_child, j);

  if (!exited (st, 0)) {
    describe_status (why, sizeof why, st);
    fprintf (stderr, "FAIL [seed=%" PRIu64 "] crash-phase setup child (%s): %s\n",
             g_seed, j->c->name, why);
    return 1;
  }
  return 0;
}

static int
crash_phase (uint64_t trials)
{
  uint64_t done = 0;
  unsigned base_i = 0;
  double t0 = now_s ();
  char why[64];

  while (done < trials) {
    struct crash_job j;
    const struct config *c = &crash_configs[base_i % NCRASHCONFIGS];
    unsigned seq;
    int st;

    memset (&j, 0, sizeof j);
    j.c = c;
    j.setup_seed = rnd ();
    j.setup_ops = 20 + (unsigned) rnd_below (30);
    for (seq = 0; seq < 3 && done < trials; seq++) {
      char count_file[600], sim[128], buf[256];
      uint64_t syncs, kk;
      unsigned t;

      j.ops_seed = rnd ();
      j.crash_ops = 10 + (unsigned) rnd_below (40);
      if (setup_work (&j) != 0)
        return 1;
      snprintf (count_file, sizeof count_file, "%s/count", g_dir);
      unlink (count_file);
      st = in_child ("count", count_file, 600, crash_ops_child, &j);
      if (!exited (st, 0)) {
        describe_status (why, sizeof why, st);
        fprintf (stderr, "FAIL [seed=%" PRIu64 "] crash-phase count child (%s): %s\n",
                 g_seed, c->name, why);
        return 1;
      }
      syncs = read_syncs (count_file, buf, sizeof buf);
      if (syncs == 0) {
        fprintf (stderr, "FAIL [seed=%" PRIu64 "] the op sequence made no sync "
                 "(count file: %s)\n", g_seed, buf);
        return 1;
      }
      for (t = 0; t < 8 && done < trials; t++, done++) {
        kk = t == 0 ? 1 : t == 1 ? syncs : 1 + rnd_below (syncs);
        j.k = kk;
        j.sim_seed = rnd_below (1000000);
        j.trial = (unsigned) done;
        j.verify_seed = rnd ();
        if (setup_work (&j) != 0)
          return 1;
        snprintf (sim, sizeof sim, "crash:n=%" PRIu64 ":seed=%" PRIu64, kk, j.sim_seed);
        st = in_child (sim, NULL, 600, crash_ops_child, &j);
        if (!exited (st, SIM_EXIT_CRASH)) {
          describe_status (why, sizeof why, st);
          fprintf (stderr, "FAIL [seed=%" PRIu64 "] crash child (%s, VHDKIT_SIM=%s, "
                   "%" PRIu64 " syncs counted): %s, expected the simulated crash "
                   "(exit 99)\n", g_seed, c->name, sim, syncs, why);
          return 1;
        }
        st = in_child (NULL, NULL, 600, crash_verify_child, &j);
        if (!exited (st, 0)) {
          describe_status (why, sizeof why, st);
          fprintf (stderr, "FAIL [seed=%" PRIu64 "] verify after crash (%s, "
                   "VHDKIT_SIM=%s of %" PRIu64 " syncs): %s\n", g_seed,
                   c->name, sim, syncs, why);
          return 1;
        }
      }
    }
    base_i++;
  }
  fprintf (stderr, "# crash phase: %" PRIu64 " crashes on %u op sequences, %.1fs\n",
           done, base_i, now_s () - t0);
  return 0;
}

/* ---- main ---- */

struct clean_job { const struct config *c; unsigned round; uint64_t steps, seed; };

static void
clean_child (void *arg)
{
  struct clean_job *j = arg;

  rng = j->seed;
  clean_round (j->c, j->round, j->steps);
}

int
main (void)
{
  uint64_t steps = env_u64 ("VHDKIT_RCT_MODEL_STEPS", 10000);
  uint64_t crashes = env_u64 ("VHDKIT_RCT_MODEL_CRASHES", 128);
  uint64_t per_round = 1500, left;
  unsigned round = 0;
  int status = 0;
  char why[64];

  model_start (steps, crashes);
  if (make_work_dir () == -1 || !alloc_bufs (WBUF))
    return 2;

  /* Clean rounds: every config gets a round, then they rotate. */
  for (left = steps; left > 0 && status == 0; round++) {
    struct clean_job j;
    uint64_t n = left < per_round ? left : per_round;
    int st;

    /* The first rounds are short so that every config runs by default. */
    if (round < NCONFIGS && steps >= 3000)
      n = round < 2 ? 1500 : 600;
    if (n > left)
      n = left;
    j.c = &configs[round % NCONFIGS];
    j.round = round;
    j.steps = n;
    j.seed = rnd ();
    st = in_child (NULL, NULL, 600, clean_child, &j);
    if (!exited (st, 0)) {
      describe_status (why, sizeof why, st);
      fprintf (stderr, "FAIL [seed=%" PRIu64 "] clean round %u (%s): %s\n",
               g_seed, round, j.c->name, why);
      status = 1;
    }
    left -= n;
    if (status == 0 && !keep_dir ())
      rm_tree (pathf ("%s/clean%u", g_dir, round));
  }
  if (status == 0 && crashes > 0)
    status = crash_phase (crashes);

  return model_finish (status, "");
}
