/* Model-based test of VHD Sets (docs/FORMAT-vhds.md, include/vhdkit.h
 * "VHD Sets") through the public API only.
 *
 * A round starts from a dynamic VHDX base (512-byte sectors, 1 or 2 MiB
 * blocks, 32-48 MiB), for some configs filled and tracked beforehand,
 * made a set with vhdkit_set_convert (base, NULL, G) (G = 4 KiB or
 * 64 KiB; a tracked base keeps its own G).  Then a random sequence of:
 * writes, zeros and discards through vhdkit_disk_open ("SET.vhds",
 * RDWR); RCT checkpoints on that leaf; snapshots (with and without an
 * ID); deletes of snapshots and of reference points (with and without
 * persist_reference); applies; optimizes; close+reopen (also read-only);
 * argument checks; and, in the second half of each round, crashes.
 *
 * The model keeps the live disk's content (a tag per 512-byte unit: the
 * write that put it there), the content of every reference point
 * (snapshot, persisted reference point, RCT ID, deleted snapshot's RCT
 * ID) when it was made, and a linear history of events, each with the
 * units it wrote.  An apply of snapshot S is an event that writes every
 * unit written by the events since S (the revert writes them back).  So
 * for LimitId L and TARGET T (a later snapshot, or the live state):
 *   - every unit whose content differs between L and T must be reported
 *     (no false negatives: always, also after crashes and for points on
 *     branches that an apply discarded);
 *   - if L is an ancestor of T (T's content derives from L's without an
 *     apply to something older than L), every unit written by the events
 *     between them must be reported, and nothing outside those units
 *     rounded out to G (exactness) — unless a crash lies between them,
 *     when over-report is allowed; for L on a discarded branch
 *     over-report is allowed;
 *   - ranges of kind ZERO read as zeros in T.
 * After every step every point is queried against the live state and two
 * random (point, later snapshot) pairs; every 8 steps every pair.  Each
 * query covers the whole disk, paging on ProcessedByteLength with a
 * random cap.  LimitId is a snapshot's ID (sometimes as {UPPER CASE}),
 * its RCT ID (vhdkit_set_get_snapshots), a reference point's ID or RCT
 * ID, or an RCT ID from vhdkit_rct_checkpoint; TARGET is "", NULL or a
 * snapshot's ID.  Also checked: a deleted snapshot's ID gives 32775 as
 * LimitId, as TARGET and in SET.vhds@ID; a reference point's ID works as
 * LimitId but gives 32775 as TARGET and in SET.vhds@ID; a TARGET older
 * than LimitId gives 32773; LimitId = TARGET gives no range; an
 * operation on the set while its leaf is open gives 32774; SET.vhds@ID
 * reads each snapshot's content (a window every step, all of it every 8
 * steps) and refuses read-write; the leaf reads the model; the records
 * (vhdkit_set_get_info, vhdkit_set_get_snapshots) are the model's,
 * oldest first, with their RCT IDs; ParentPathsList and AllPaths agree
 * with the images' chains; after an optimize AllPaths holds only members
 * the leaf or a snapshot needs; tracking keeps its epoch and
 * granularity; every member passes vhdkit_check (every 8 steps).
 *
 * Crash steps: the round copies the set's folder, runs one operation
 * (write+close, snapshot, delete, apply, optimize) on the copy in a child
 * with VHDKIT_SIM=count to learn its syncs, then on the set itself in a
 * child with VHDKIT_SIM=crash:n=K:seed=S (docs/IO-SIM.md; K weighted
 * towards the last syncs, where the commits are), which must exit 99.
 * Each child is this binary exec'd with --op, so that VHDKIT_SIM is read
 * fresh.  Afterwards vhdkit_set_get_info must succeed, the records must
 * be the old or the new ones, every snapshot of either state must read
 * its content, the leaf must read the old or the new content (a write:
 * each unit old or new), change queries must have no false negatives
 * (and stay exact over intervals that end before the crash), tracking
 * must keep its epoch (a crash never forces a full backup); sometimes the
 * leaf is written before anything finishes what the crash left, and
 * sometimes the optimize that follows crashes too; then
 * vhdkit_set_optimize must succeed and every member pass vhdkit_check.
 * The model continues from the state found.
 *
 * Every round runs in a fork()ed child; the parent never calls libvhdkit.
 *
 * Environment:
 *   VHDKIT_SET_MODEL_STEPS    steps in all (default 450, 150 per round)
 *   VHDKIT_SET_MODEL_CRASHES  crash steps in all (default STEPS / 8)
 *   VHDKIT_SET_MODEL_SEED     the seed (default: from the clock; printed)
 *   VHDKIT_SET_MODEL_KEEP     1 = keep the work directory
 *   VHDKIT_SET_MODEL_DIR      where to put it (default /dev/shm if
 *                             writable, else $TMPDIR, else /tmp)
 *   VHDKIT_SET_MODEL_TRACE    1 = print every op
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

#define MODEL_NAME "set-model"
#define MODEL_ENV "VHDKIT_SET_MODEL_"
#define MODEL_OPLOG 8           /* a failure lists the 8 ops before the last */
#include "model-util.h"

static int run_op_child (const char *sim, const char *count_file, char *const argv[]);


#define MAX_SNAPS 8             /* live snapshots kept at most */
#define MAX_RCT 8               /* RCT-only points kept in the model */
#define MAX_REFS 4              /* persisted reference points */
#define FULL_EVERY 8            /* full checks every N steps */

/* ---- helpers ---- */

static void *
xrealloc (void *p, size_t sz)
{
  p = realloc (p, sz ? sz : 1);
  if (!p) {
    perror ("realloc");
    exit (2);
  }
  return p;
}

static bool
same_file (const char *a, const char *b)
{
  struct stat sa, sb;
  return a && b && stat (a, &sa) == 0 && stat (b, &sb) == 0 &&
    sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

static bool
ends_with (const char *s, const char *suf)
{
  size_t a = strlen (s), b = strlen (suf);
  return a >= b && strcasecmp (s + a - b, suf) == 0;
}

/* Copy the regular files of SRC into a new folder DST, keeping holes. */
static void
copy_tree (const char *src, const char *dst)
{
  DIR *dir;
  struct dirent *e;
  static char buf[1 << 20];

  rm_tree (dst);
  if (mkdir (dst, 0755) == -1) {
    perror (dst);
    exit (2);
  }
  dir = opendir (src);
  if (!dir) {
    perror (src);
    exit (2);
  }
  while ((e = readdir (dir)) != NULL) {
    struct stat sb;
    int in, out;
    off_t pos = 0, end, hole;
    const char *sp = pathf ("%s/%s", src, e->d_name);
    const char *dp;

    if (lstat (sp, &sb) == -1 || !S_ISREG (sb.st_mode))
      continue;
    dp = pathf ("%s/%s", dst, e->d_name);
    in = open (sp, O_RDONLY);
    out = open (dp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (in == -1 || out == -1) {
      perror (sp);
      exit (2);
    }
    end = sb.st_size;
    while (pos < end) {
      off_t data = lseek (in, pos, SEEK_DATA);
      if (data == -1 || data >= end)
        break;
      hole = lseek (in, data, SEEK_HOLE);
      if (hole == -1 || hole > end)
        hole = end;
      while (data < hole) {
        size_t n = (size_t) (hole - data) < sizeof buf ? (size_t) (hole - data) : sizeof buf;
        ssize_t r = pread (in, buf, n, data);
        if (r <= 0 || pwrite (out, buf, (size_t) r, data) != r) {
          perror ("copy");
          exit (2);
        }
        data += r;
      }
      pos = hole;
    }
    if (ftruncate (out, end) == -1) {
      perror ("ftruncate");
      exit (2);
    }
    close (in);
    close (out);
  }
  closedir (dir);
}

#define WBUF (2u << 20)                 /* the largest write */

/* ---- bitmaps over 512-byte units ---- */

static void
bm_set (uint64_t *bm, uint64_t u0, uint64_t u1)
{
  for (; u0 < u1 && (u0 & 63); u0++)
    bm[u0 >> 6] |= UINT64_C (1) << (u0 & 63);
  for (; u0 + 64 <= u1; u0 += 64)
    bm[u0 >> 6] = UINT64_MAX;
  for (; u0 < u1; u0++)
    bm[u0 >> 6] |= UINT64_C (1) << (u0 & 63);
}

static bool
bm_test (const uint64_t *bm, uint64_t u)
{
  return (bm[u >> 6] >> (u & 63)) & 1;
}

static bool
bm_any (const uint64_t *bm, uint64_t u0, uint64_t u1)
{
  for (; u0 < u1 && (u0 & 63); u0++)
    if (bm_test (bm, u0))
      return true;
  for (; u0 + 64 <= u1; u0 += 64)
    if (bm[u0 >> 6])
      return true;
  for (; u0 < u1; u0++)
    if (bm_test (bm, u0))
      return true;
  return false;
}

static void
bm_or (uint64_t *dst, const uint64_t *src, size_t words)
{
  size_t i;
  for (i = 0; i < words; i++)
    dst[i] |= src[i];
}

/* Print the byte ranges of BM (the first 24). */
static void
bm_print (const char *what, const uint64_t *bm, uint64_t units)
{
  uint64_t u = 0, n = 0;

  fprintf (stderr, "  %s:", what);
  while (u < units) {
    uint64_t s;
    if (!bm_test (bm, u)) {
      u++;
      continue;
    }
    s = u;
    while (u < units && bm_test (bm, u))
      u++;
    if (n++ < 24)
      fprintf (stderr, " [%" PRIu64 "+%" PRIu64 ")", s * UNIT, (u - s) * UNIT);
  }
  fprintf (stderr, "%s (%" PRIu64 " ranges)\n", n > 24 ? " ..." : "", n);
}

/* ---- configurations ---- */

struct config {
  const char *name;
  uint32_t g;                   /* the granularity tracking must have */
  uint32_t convert_g;           /* passed to vhdkit_set_convert */
  uint32_t block;
  uint64_t size;
  bool prefill;                 /* data in the base before the set */
  bool pretrack;                /* tracking enabled on the base first */
};

static const struct config configs[] = {
  { "G4K-blk1M-32M", 4096, 4096, 1u << 20, 32u << 20, false, false },
  { "G64K-blk2M-48M-prefilled", 65536, 65536, 2u << 20, 48u << 20, true, false },
  { "G64K-pretracked-blk1M-40M", 65536, 4096, 1u << 20, 40u << 20, true, true },
};
#define NCONFIGS (sizeof configs / sizeof configs[0])

/* ---- the model ---- */

enum { P_SNAP, P_REF, P_RCT };
static const char *const kind_name[] = { "snapshot", "reference point", "RCT ID" };

struct point {
  int kind;
  char guid[VHDKIT_GUID_STR];   /* P_SNAP, P_REF: the snapshot ID */
  char rct[VHDKIT_RCT_ID_MAX];  /* its RCT ID */
  int64_t seq;                  /* creation order */
  size_t t;                     /* events before it */
  uint32_t *content;            /* the disk when it was made */
};

struct event {
  uint64_t *bm;                 /* the units it wrote */
  bool inexact;                 /* a crash: over-report allowed across it */
  char what[48];
};

struct model {
  uint64_t size, units, words;
  uint32_t g, upb;              /* granularity, units per G-block */
  uint32_t *live;
  int64_t live_parent;          /* the point the live state derives from */
  struct event *ev;
  size_t nev, capev;
  struct point *pts;            /* oldest first */
  size_t npts, cappts;
  int64_t *parent;              /* by seq: the point each derives from */
  size_t nseq, capseq;
  char (*dead)[VHDKIT_GUID_STR];        /* deleted IDs */
  size_t ndead, capdead;
  uint32_t nexttag;
  uint64_t *lo, *evu, *got, *diff;      /* scratch */
};

static void
model_init (struct model *m, const struct config *c)
{
  memset (m, 0, sizeof *m);
  m->size = c->size;
  m->units = c->size / UNIT;
  m->words = (m->units + 63) / 64;
  m->g = c->g;
  m->upb = c->g / UNIT;
  m->live = xcalloc (m->units, sizeof *m->live);
  m->live_parent = -1;
  m->nexttag = 1;
  m->lo = xcalloc (m->words, 8);
  m->evu = xcalloc (m->words, 8);
  m->got = xcalloc (m->words, 8);
  m->diff = xcalloc (m->words, 8);
}

static void
model_free (struct model *m)
{
  size_t i;
  for (i = 0; i < m->nev; i++)
    free (m->ev[i].bm);
  for (i = 0; i < m->npts; i++)
    free (m->pts[i].content);
  free (m->ev);
  free (m->pts);
  free (m->parent);
  free (m->dead);
  free (m->live);
  free (m->lo);
  free (m->evu);
  free (m->got);
  free (m->diff);
  memset (m, 0, sizeof *m);
}

static struct event *
model_event (struct model *m, bool inexact, const char *what)
{
  struct event *e;

  if (m->nev == m->capev) {
    m->capev = m->capev ? 2 * m->capev : 256;
    m->ev = xrealloc (m->ev, m->capev * sizeof *m->ev);
  }
  e = &m->ev[m->nev++];
  e->bm = xcalloc (m->words, 8);
  e->inexact = inexact;
  snprintf (e->what, sizeof e->what, "%s", what);
  return e;
}

static void
model_write (struct model *m, uint64_t off, uint64_t len, uint32_t tag)
{
  struct event *e = model_event (m, false, tag ? "write" : "zero");
  uint64_t u;

  bm_set (e->bm, off / UNIT, (off + len) / UNIT);
  for (u = off / UNIT; u < (off + len) / UNIT; u++)
    m->live[u] = tag;
}

static size_t
model_add_point (struct model *m, int kind, const char *guid, const char *rct)
{
  struct point *p;

  if (m->npts == m->cappts) {
    m->cappts = m->cappts ? 2 * m->cappts : 32;
    m->pts = xrealloc (m->pts, m->cappts * sizeof *m->pts);
  }
  if (m->nseq == m->capseq) {
    m->capseq = m->capseq ? 2 * m->capseq : 256;
    m->parent = xrealloc (m->parent, m->capseq * sizeof *m->parent);
  }
  p = &m->pts[m->npts];
  memset (p, 0, sizeof *p);
  p->kind = kind;
  snprintf (p->guid, sizeof p->guid, "%s", guid ? guid : "");
  snprintf (p->rct, sizeof p->rct, "%s", rct ? rct : "");
  p->seq = (int64_t) m->nseq;
  p->t = m->nev;
  p->content = xcalloc (m->units, sizeof *p->content);
  memcpy (p->content, m->live, m->units * sizeof *p->content);
  m->parent[m->nseq++] = m->live_parent;
  m->live_parent = p->seq;
  return m->npts++;
}

static void
model_forget (struct model *m, size_t i)
{
  free (m->pts[i].content);
  memmove (&m->pts[i], &m->pts[i + 1], (m->npts - i - 1) * sizeof *m->pts);
  m->npts--;
}

static void
model_add_dead (struct model *m, const char *guid)
{
  if (m->ndead == m->capdead) {
    m->capdead = m->capdead ? 2 * m->capdead : 16;
    m->dead = xrealloc (m->dead, m->capdead * sizeof *m->dead);
  }
  snprintf (m->dead[m->ndead++], VHDKIT_GUID_STR, "%s", guid);
}

/* Apply snapshot S: an event writing every unit written since S. */
static void
model_apply (struct model *m, size_t si, bool crashed)
{
  struct point *s = &m->pts[si];
  size_t t0 = s->t, i;
  struct event *e;
  bool inexact = crashed;

  e = model_event (m, false, "apply");
  s = &m->pts[si];
  for (i = t0; i < m->nev - 1; i++) {
    bm_or (e->bm, m->ev[i].bm, m->words);
    inexact |= m->ev[i].inexact;
  }
  e->inexact = inexact;
  memcpy (m->live, s->content, m->units * sizeof *m->live);
  m->live_parent = s->seq;
}

static size_t
model_find (const struct model *m, const char *guid)
{
  size_t i;
  for (i = 0; i < m->npts; i++)
    if (m->pts[i].kind != P_RCT && strcasecmp (m->pts[i].guid, guid) == 0)
      return i;
  return SIZE_MAX;
}

static size_t
model_count (const struct model *m, int kind)
{
  size_t i, n = 0;
  for (i = 0; i < m->npts; i++)
    n += m->pts[i].kind == kind;
  return n;
}

/* The Nth point of KIND (N < model_count). */
static size_t
model_nth (const struct model *m, int kind, size_t n)
{
  size_t i;
  for (i = 0; i < m->npts; i++)
    if (m->pts[i].kind == kind && n-- == 0)
      return i;
  return SIZE_MAX;
}

static size_t
model_rnd (const struct model *m, int kind)
{
  size_t n = model_count (m, kind);
  return n ? model_nth (m, kind, rnd_below (n)) : SIZE_MAX;
}

/* Delete a snapshot or reference point: with PERSIST a snapshot becomes
 * a reference point (a reference point stays one); without, the ID dies
 * and only its RCT ID stays usable. */
static void
model_delete (struct model *m, size_t i, bool persist)
{
  struct point *p = &m->pts[i];
  if (persist && p->rct[0])
    p->kind = P_REF;
  else {
    model_add_dead (m, p->guid);
    p->kind = P_RCT;
  }
}

static bool
is_ancestor (const struct model *m, const struct point *l, const struct point *t)
{
  int64_t x = t ? t->seq : m->live_parent;
  while (x >= 0) {
    if (x == l->seq)
      return true;
    x = m->parent[x];
  }
  return false;
}

/* What a query from L to T (NULL = live) must report (M->lo: the units
 * that must be, M->evu: the units whose G-blocks may be) and whether
 * the upper bound holds (*EXACT). */
static void
model_expect (struct model *m, const struct point *l, const struct point *t,
              bool *exact)
{
  size_t t0 = l->t, t1 = t ? t->t : m->nev, i;
  const uint32_t *tc = t ? t->content : m->live;
  bool anc = is_ancestor (m, l, t), inexact = false;
  uint64_t u;

  memset (m->evu, 0, m->words * 8);
  memset (m->diff, 0, m->words * 8);
  for (i = t0; i < t1; i++) {
    bm_or (m->evu, m->ev[i].bm, m->words);
    inexact |= m->ev[i].inexact;
  }
  /* The content difference: the lower bound off the ancestry, and a
   * check of the model itself (now and then: it costs). */
  if (!anc || rnd_below (8) == 0) {
    for (u = 0; u < m->units; u++)
      if (l->content[u] != tc[u]) {
        m->diff[u >> 6] |= UINT64_C (1) << (u & 63);
        if (!bm_test (m->evu, u))
          fail ("internal error of the model: unit %" PRIu64 " differs between %s %s and %s "
                "but no event between them wrote it", u, kind_name[l->kind],
                l->kind == P_RCT ? l->rct : l->guid, t ? t->guid : "the live state");
      }
  }
  memcpy (m->lo, anc ? m->evu : m->diff, m->words * 8);
  *exact = anc && !inexact;
}

/* ---- rounds ---- */

struct round {
  const struct config *c;
  unsigned idx;
  char dir[600], base[600], set[600];
  struct model m;
  struct vhdkit_disk *d;        /* the leaf through SET.vhds, or NULL */
  bool d_rw;
  char epoch[40];
  uint64_t step;
  uint64_t queries, calls, crashes, crash_new, crash_old;
};

static struct vhdkit_disk *
open_path (const char *path, unsigned flags)
{
  struct vhdkit_disk *d = vhdkit_disk_open (path, flags);
  if (d == NULL)
    fail_lib (pathf ("open %s (%s)", path, flags & VHDKIT_OPEN_RDWR ? "rw" : "ro"));
  return d;
}

static void
close_disk (struct vhdkit_disk *d, const char *what)
{
  if (vhdkit_disk_close (d) == -1)
    fail_lib (pathf ("close %s", what));
}

static void
leaf_close (struct round *r)
{
  if (r->d) {
    close_disk (r->d, "the leaf");
    r->d = NULL;
  }
}

static void
leaf_open (struct round *r, bool rw)
{
  struct vhdkit_rct_status st = VHDKIT_RCT_STATUS_INIT;

  if (r->d && r->d_rw == rw)
    return;
  leaf_close (r);
  r->d = open_path (r->set, rw ? VHDKIT_OPEN_RDWR : VHDKIT_OPEN_RDONLY);
  r->d_rw = rw;
  get_rct_status (r->d, &st);
  if (!st.enabled)
    fail ("tracking is not enabled on the leaf of the set");
  if (st.granularity != r->c->g)
    fail ("tracking granularity is %" PRIu32 ", expected %" PRIu32, st.granularity, r->c->g);
  if (st.problem[0])
    fail ("tracking reports a problem: %s", st.problem);
  if (r->epoch[0] == '\0')
    snprintf (r->epoch, sizeof r->epoch, "%s", st.epoch);
  else if (strcasecmp (r->epoch, st.epoch) != 0)
    fail ("the tracking epoch changed (%s -> %s): every reference point is lost and a full backup is needed",
          r->epoch, st.epoch);
}

/* Compare [OFF, OFF+LEN) of D with WANT. */
static void
check_content (struct vhdkit_disk *d, const uint32_t *want, uint64_t off,
               uint64_t len, const char *what)
{
  while (len) {
    uint64_t n = len < IOBUF ? len : IOBUF, u;
    if (vhdkit_disk_pread (d, iobuf, (size_t) n, off, 0) == -1)
      fail_lib (pathf ("pread %s %" PRIu64 "+%" PRIu64, what, off, n));
    for (u = 0; u < n / UNIT; u++) {
      uint64_t unit = off / UNIT + u;
      uint64_t t = unit_tag (iobuf + u * UNIT, unit);
      if (t != want[unit])
        fail ("%s: data at %" PRIu64 " holds %s%" PRIu64 ", the model says tag %" PRIu32,
              what, unit * UNIT, t == UINT64_MAX ? "garbage " : "tag ",
              t == UINT64_MAX ? 0 : t, want[unit]);
    }
    off += n;
    len -= n;
  }
}

/* Read [0, size) of D into TAGS. */
static void
read_tags (struct vhdkit_disk *d, const struct model *m, uint32_t *tags)
{
  uint64_t off, u;

  for (off = 0; off < m->size; off += IOBUF) {
    uint64_t n = m->size - off < IOBUF ? m->size - off : IOBUF;
    if (vhdkit_disk_pread (d, iobuf, (size_t) n, off, 0) == -1)
      fail_lib ("pread of the leaf");
    for (u = 0; u < n / UNIT; u++) {
      uint64_t t = unit_tag (iobuf + u * UNIT, off / UNIT + u);
      if (t == UINT64_MAX)
        fail ("the leaf holds garbage at %" PRIu64 " (neither zeros nor a whole written unit)",
              off + u * UNIT);
      tags[off / UNIT + u] = (uint32_t) t;
    }
  }
}

static void
rnd_window (const struct model *m, uint64_t *off, uint64_t *len)
{
  uint64_t secs = m->size / UNIT, s = rnd_below (secs), n = 1 + rnd_below ((1u << 20) / UNIT);
  if (s + n > secs)
    n = secs - s;
  *off = s * UNIT;
  *len = n * UNIT;
}

/* Snapshot P's content through SET.vhds@ID: all of it, or a window. */
static void
check_snapshot (struct round *r, const struct point *p, bool full)
{
  struct vhdkit_disk *sd;
  uint64_t off = 0, len = r->m.size, size = 0;

  sd = vhdkit_disk_open (pathf ("%s@%s", r->set, p->guid), VHDKIT_OPEN_RDONLY);
  if (!sd)
    fail_lib (pathf ("open snapshot %s@%s", r->set, p->guid));
  if (vhdkit_disk_get_size (sd, &size, NULL) == -1)
    fail_lib ("get_size of a snapshot");
  if (size != r->m.size)
    fail ("snapshot %s has size %" PRIu64 ", the disk has %" PRIu64, p->guid, size, r->m.size);
  if (!full)
    rnd_window (&r->m, &off, &len);
  check_content (sd, p->content, off, len, pathf ("snapshot %s", p->guid));
  close_disk (sd, "a snapshot");
}

static void
check_all_snapshots (struct round *r, bool full)
{
  size_t i;
  for (i = 0; i < r->m.npts; i++)
    if (r->m.pts[i].kind == P_SNAP)
      check_snapshot (r, &r->m.pts[i], full);
}

/* ---- queries ---- */

static size_t
rnd_cap (void)
{
  switch (rnd_below (10)) {
  case 0: return 1 + (size_t) rnd_below (3);
  case 1: return 1 + (size_t) rnd_below (16);
  case 2: return 1000;
  default: return 0;
  }
}

/* The LimitId text of point P: its snapshot ID (sometimes in braces and
 * upper case) or its RCT ID. */
static const char *
limit_text (const struct point *p)
{
  static char buf[4][VHDKIT_RCT_ID_MAX + 4];
  static unsigned k;
  char *b = buf[k++ % 4];
  size_t i;

  if (p->kind == P_RCT || (p->rct[0] && chance (35)))
    return p->rct;
  if (chance (10)) {
    snprintf (b, sizeof buf[0], "{%s}", p->guid);
    for (i = 0; b[i]; i++)
      if (b[i] >= 'a' && b[i] <= 'f')
        b[i] = (char) (b[i] - 'a' + 'A');
    return b;
  }
  return p->guid;
}

static const char *
pname (const struct point *p)
{
  return p->kind == P_RCT ? p->rct : p->guid;
}

/* The events in [T0, T1): which wrote unit U. */
static void
print_events (const struct model *m, size_t t0, size_t t1, uint64_t u)
{
  size_t i;

  fprintf (stderr, "  the events between them (%zu):", t1 - t0);
  for (i = t0; i < t1 && i < t0 + 40; i++)
    fprintf (stderr, " #%zu %s%s%s", i, m->ev[i].what, m->ev[i].inexact ? " (crash)" : "",
             u != UINT64_MAX && bm_test (m->ev[i].bm, u) ? " [wrote it]" : "");
  fprintf (stderr, "%s\n", t1 > t0 + 40 ? " ..." : "");
}

/* Query from L to T (NULL = the live state) over the whole disk, paging
 * with cap CAP, and compare with the model. */
static void
check_query (struct round *r, const struct point *l, const struct point *t, size_t cap)
{
  struct model *m = &r->m;
  const char *ltext = limit_text (l);
  const char *ttext = t ? t->guid : (chance (50) ? "" : NULL);
  const uint32_t *tc = t ? t->content : m->live;
  uint64_t off = 0, end = m->size, u;
  unsigned pages = 0;
  bool exact;

  qs.queries++;
  r->queries++;
  memset (m->got, 0, m->words * 8);
  model_expect (m, l, t, &exact);
  do {
    struct vhdkit_changes c = VHDKIT_CHANGES_INIT;
    uint64_t rem = end - off;
    const char *why;
    size_t i;

    r->calls++;
    if (get_page (r->d, ltext, ttext, off, rem, cap, &c) == -1)
      fail_lib (pathf ("get_changes(LimitId %s = %s %s, target %s, offset %" PRIu64
                       ", length %" PRIu64 ", cap %zu)", ltext, kind_name[l->kind],
                       pname (l), ttext ? (*ttext ? ttext : "\"\"") : "NULL", off, rem, cap));
#define QFAIL(...) do {                                                 \
      fprintf (stderr, "query LimitId %s (%s) target %s cap %zu, page at %" PRIu64 \
               " (#%u): processed %" PRIu64 ", %zu ranges\n", ltext,     \
               kind_name[l->kind], ttext ? (*ttext ? ttext : "\"\"") : "NULL", \
               cap, off, pages, c.processed, c.count);                  \
      fail (__VA_ARGS__); } while (0)
    if ((why = page_problem (&c, rem, cap)) != NULL)
      QFAIL ("%s", why);
    for (i = 0; i < c.count; i++) {
      uint64_t o = c.offsets[i], len = c.lengths[i];
      if ((why = range_problem (&c, i, off, UNIT, "")) != NULL)
        QFAIL ("%s", why);
      if (c.kinds && c.kinds[i] == VHDKIT_CHANGE_ZERO)
        for (u = o / UNIT; u < (o + len) / UNIT; u++)
          if (tc[u] != 0)
            QFAIL ("range %zu [%" PRIu64 "+%" PRIu64 ") is of kind ZERO but byte %" PRIu64
                   " of the target holds data (tag %" PRIu32 "): a backup that skips it loses data",
                   i, o, len, u * UNIT, tc[u]);
      bm_set (m->got, o / UNIT, (o + len) / UNIT);
      if (exact) {
        uint64_t b;
        for (b = o / m->g; b <= (o + len - 1) / m->g; b++) {
          uint64_t u1 = (b + 1) * m->upb;
          if (!bm_any (m->evu, b * m->upb, u1 < m->units ? u1 : m->units)) {
            bm_print ("model (must)", m->lo, m->units);
            print_events (m, l->t, t ? t->t : m->nev, UINT64_MAX);
            QFAIL ("OVER-REPORT: range %zu [%" PRIu64 "+%" PRIu64 ") covers the block at %"
                   PRIu64 " (G = %" PRIu32 ") that nothing changed between %s %s and %s",
                   i, o, len, b * m->g, m->g, kind_name[l->kind], pname (l),
                   t ? t->guid : "the live state");
          }
        }
      }
    }
#undef QFAIL
    off += c.processed;
    pages++;
    vhdkit_changes_free (&c);
  } while (off < end);

  for (u = 0; u < m->units; u += 64)
    if (m->lo[u >> 6] & ~m->got[u >> 6]) {
      u += (uint64_t) __builtin_ctzll (m->lo[u >> 6] & ~m->got[u >> 6]);
      bm_print ("library", m->got, m->units);
      bm_print ("model (must)", m->lo, m->units);
      print_events (m, l->t, t ? t->t : m->nev, u);
      fail ("FALSE NEGATIVE: LimitId %s (%s %s, made at model event %zu) target %s (%s, event %zu), "
            "cap %zu: unit at byte %" PRIu64 " %s but is not reported (content %" PRIu32 " -> %" PRIu32 ")",
            ltext, kind_name[l->kind], pname (l), l->t,
            ttext ? (*ttext ? ttext : "\"\"") : "NULL", t ? "snapshot" : "live",
            t ? t->t : m->nev, cap, u * UNIT,
            bm_test (m->diff, u) ? "differs" : "was written between them",
            l->content[u], tc[u]);
    }
  TRACE ("  query %s -> %s: ok (%s)", pname (l), t ? t->guid : "live", exact ? "exact" : "cover");
}

static int
changes_rc (struct vhdkit_disk *d, const char *id, const char *target, uint64_t len)
{
  struct vhdkit_changes c = VHDKIT_CHANGES_INIT;
  int r = vhdkit_disk_get_changes (d, id, target, 0, len, 0, &c);
  if (r == 0)
    vhdkit_changes_free (&c);
  return r;
}

/* Every point against the live state; NPAIRS random (point, later
 * snapshot) pairs, or all of them with FULL. */
static void
check_queries (struct round *r, bool full, unsigned npairs)
{
  struct model *m = &r->m;
  size_t i, j, ns = model_count (m, P_SNAP);
  unsigned k;

  for (i = 0; i < m->npts; i++)
    check_query (r, &m->pts[i], NULL, full ? 0 : rnd_cap ());
  if (ns == 0)
    return;
  if (full) {
    for (j = 0; j < m->npts; j++)
      if (m->pts[j].kind == P_SNAP)
        for (i = 0; i <= j; i++)
          check_query (r, &m->pts[i], &m->pts[j], rnd_cap ());
    return;
  }
  for (k = 0; k < npairs; k++) {
    size_t ti = model_rnd (m, P_SNAP), li = rnd_below (ti + 1);
    check_query (r, &m->pts[li], &m->pts[ti], rnd_cap ());
  }
}

/* Calls that must fail. */
static void
check_errors (struct round *r)
{
  struct model *m = &r->m;
  size_t i, ti, li;
  struct vhdkit_disk *x;

  setop ("argument checks (step %" PRIu64 ")", r->step);
  leaf_open (r, true);
  for (i = 0; i < m->ndead && i < 3; i++) {
    const char *g = m->dead[rnd_below (m->ndead)];
    expect_rc (VHDKIT_RC_INVALID_STATE, changes_rc (r->d, g, "", m->size),
               pathf ("get_changes with the ID of deleted snapshot %s as LimitId", g));
    if (m->npts) {
      expect_rc (VHDKIT_RC_INVALID_STATE, changes_rc (r->d, m->pts[0].rct[0] ? m->pts[0].rct : g, g, m->size),
                 pathf ("get_changes with deleted snapshot %s as TARGET", g));
    }
    x = vhdkit_disk_open (pathf ("%s@%s", r->set, g), VHDKIT_OPEN_RDONLY);
    if (x) {
      vhdkit_disk_close (x);
      fail ("SET.vhds@%s of a deleted snapshot opened", g);
    }
    if (vhdkit_get_error_code () != VHDKIT_RC_INVALID_STATE)
      fail ("open SET.vhds@%s of a deleted snapshot: expected 32775, got %" PRIu32 ": %s",
            g, vhdkit_get_error_code (), vhdkit_get_error ());
  }
  ti = model_rnd (m, P_REF);
  if (ti != SIZE_MAX) {
    const struct point *p = &m->pts[ti];
    expect_rc (VHDKIT_RC_INVALID_STATE, changes_rc (r->d, p->guid, p->guid, m->size),
               pathf ("get_changes with reference point %s as TARGET", p->guid));
    x = vhdkit_disk_open (pathf ("%s@%s", r->set, p->guid), VHDKIT_OPEN_RDONLY);
    if (x) {
      vhdkit_disk_close (x);
      fail ("SET.vhds@%s of a reference point (no content) opened", p->guid);
    }
    if (vhdkit_get_error_code () != VHDKIT_RC_INVALID_STATE)
      fail ("open SET.vhds@%s of a reference point: expected 32775, got %" PRIu32 ": %s",
            p->guid, vhdkit_get_error_code (), vhdkit_get_error ());
  }
  ti = model_rnd (m, P_SNAP);
  if (ti != SIZE_MAX) {
    const struct point *t = &m->pts[ti];
    /* LimitId = TARGET: nothing changed. */
    {
      struct vhdkit_changes c = VHDKIT_CHANGES_INIT;
      const char *lt = chance (50) ? t->guid : t->rct;
      if (vhdkit_disk_get_changes (r->d, lt, t->guid, 0, m->size, 0, &c) == -1)
        fail_lib (pathf ("get_changes with LimitId %s = TARGET %s", lt, t->guid));
      if (c.count != 0 || c.processed != m->size)
        fail ("get_changes with LimitId %s = TARGET %s: %zu ranges, processed %" PRIu64
              " (expected none, whole disk)", lt, t->guid, c.count, c.processed);
      vhdkit_changes_free (&c);
    }
    /* A TARGET older than LimitId. */
    for (li = ti + 1; li < m->npts; li++) {
      const struct point *l = &m->pts[li];
      if (chance (40)) {
        const char *lt = limit_text (l);
        expect_rc (VHDKIT_RC_INVALID_PARAMETER, changes_rc (r->d, lt, t->guid, m->size),
                   pathf ("get_changes with LimitId %s (%s, newer) and older TARGET %s",
                          lt, kind_name[l->kind], t->guid));
        break;
      }
    }
    /* Snapshots are read-only. */
    x = vhdkit_disk_open (pathf ("%s@%s", r->set, t->guid), VHDKIT_OPEN_RDWR);
    if (x) {
      vhdkit_disk_close (x);
      fail ("SET.vhds@%s opened read-write", t->guid);
    }
  }
  /* An operation by another process while a disk of the set is open
   * here (in this process it would run: docs/VHD-SETS.md). */
  {
    char *argv[5] = { (char *) "test-set-model", (char *) "--op", (char *) "busy", r->set, NULL };
    int st = run_op_child (NULL, NULL, argv);
    if (!WIFEXITED (st) || WEXITSTATUS (st) != 0)
      fail ("a snapshot or optimize by another process while the leaf is open here did not fail with 32774");
  }
  /* A never-issued snapshot ID. */
  expect_rc (VHDKIT_RC_INVALID_STATE,
             changes_rc (r->d, "5f2d5f83-6bd4-4b52-8b60-4d4e9e1c2a11", "", m->size),
             "get_changes with a never-issued snapshot ID");
}

/* ---- the set's description against the model ---- */

struct setview {
  struct vhdkit_set_info info;
  struct vhdkit_snapshot_info **snaps;
  size_t nsnaps;
};

static void
setview_get (struct round *r, struct setview *v)
{
  memset (v, 0, sizeof *v);
  v->info.struct_size = sizeof v->info;
  if (vhdkit_set_get_info (r->set, &v->info) == -1)
    fail_lib ("vhdkit_set_get_info");
  if (vhdkit_set_get_snapshots (r->set, NULL, 0, true, &v->snaps, &v->nsnaps) == -1)
    fail_lib ("vhdkit_set_get_snapshots");
  if (v->nsnaps != v->info.n_snapshot_ids)
    fail ("get_info lists %zu snapshot IDs, get_snapshots %zu records",
          v->info.n_snapshot_ids, v->nsnaps);
}

static void
setview_free (struct setview *v)
{
  vhdkit_set_info_free (&v->info);
  vhdkit_snapshots_free (v->snaps, v->nsnaps);
  memset (v, 0, sizeof *v);
}

static const struct vhdkit_snapshot_info *
setview_find (const struct setview *v, const char *guid)
{
  size_t i;
  for (i = 0; i < v->nsnaps; i++)
    if (strcasecmp (v->snaps[i]->snapshot_id, guid) == 0)
      return v->snaps[i];
  return NULL;
}

static void
setview_print (const struct setview *v)
{
  size_t i;
  fprintf (stderr, "  the set's records (oldest first):\n");
  for (i = 0; i < v->nsnaps; i++)
    fprintf (stderr, "    %s %s rct %s\n", v->snaps[i]->snapshot_id,
             v->snaps[i]->snapshot_path[0] ? v->snaps[i]->snapshot_path : "(reference point)",
             v->snaps[i]->rct_id);
  fprintf (stderr, "  AllPaths:");
  for (i = 0; i < v->info.n_all_paths; i++)
    fprintf (stderr, " %s", strrchr (v->info.all_paths[i], '/') + 1);
  fprintf (stderr, "\n");
}

static void
model_print (const struct model *m)
{
  size_t i;
  fprintf (stderr, "  the model's points (oldest first):\n");
  for (i = 0; i < m->npts; i++)
    fprintf (stderr, "    %s %s rct %s (seq %" PRId64 ", event %zu)\n", kind_name[m->pts[i].kind],
             m->pts[i].guid, m->pts[i].rct, m->pts[i].seq, m->pts[i].t);
}

/* The records must be the model's snapshots and reference points, in
 * order, with their RCT IDs. */
static void
check_records (struct round *r, const struct setview *v)
{
  const struct model *m = &r->m;
  size_t i, k = 0;

  for (i = 0; i < m->npts; i++) {
    const struct point *p = &m->pts[i];
    const struct vhdkit_snapshot_info *s;
    if (p->kind == P_RCT)
      continue;
    if (k >= v->nsnaps || strcasecmp (v->snaps[k]->snapshot_id, p->guid) != 0) {
      setview_print (v);
      model_print (m);
      fail ("record %zu of the set is not the model's %s %s", k, kind_name[p->kind], p->guid);
    }
    s = v->snaps[k++];
    if (strcmp (s->rct_id, p->rct) != 0)
      fail ("record %s has RCT ID \"%s\", the model \"%s\"", p->guid, s->rct_id, p->rct);
    if ((p->kind == P_REF) != (s->snapshot_path[0] == '\0'))
      fail ("record %s: snapshot_path \"%s\" for a %s", p->guid, s->snapshot_path, kind_name[p->kind]);
    if (strcasecmp (v->info.snapshot_ids[k - 1], s->snapshot_id) != 0)
      fail ("get_info snapshot ID %zu is %s, get_snapshots says %s", k - 1,
            v->info.snapshot_ids[k - 1], s->snapshot_id);
  }
  if (k != v->nsnaps) {
    setview_print (v);
    model_print (m);
    fail ("the set has %zu records, the model %zu", v->nsnaps, k);
  }
}

/* The member files: the leaf's chain (the first CHAIN paths of
 * AllPaths) and every snapshot's image and its parents. */
static const char *mlist[4096];
static size_t nmlist;

static void
madd (const char *p)
{
  size_t k;
  for (k = 0; k < nmlist; k++)
    if (strcmp (mlist[k], p) == 0)
      return;
  if (nmlist < sizeof mlist / sizeof mlist[0])
    mlist[nmlist++] = p;
}

static bool
mhas (const char *p)
{
  size_t k;
  for (k = 0; k < nmlist; k++)
    if (strcmp (mlist[k], p) == 0)
      return true;
  return false;
}

static void
report_problem (void *opaque, const char *problem)
{
  fprintf (stderr, "  vhdkit_check %s: %s\n", (const char *) opaque, problem);
}

/* Every member passes vhdkit_check; with OPTIMIZED, AllPaths holds
 * nothing else. */
static void
check_members (struct round *r, bool optimized)
{
  struct setview v;
  struct vhdkit_disk *x;
  struct vhdkit_disk_info di = VHDKIT_DISK_INFO_INIT;
  size_t i, k;

  leaf_close (r);
  setview_get (r, &v);
  check_records (r, &v);
  x = open_path (r->set, VHDKIT_OPEN_RDONLY);
  if (vhdkit_disk_get_info (x, &di) == -1)
    fail_lib ("disk_get_info of the leaf");
  if (di.chain_depth < 1 || di.chain_depth > v.info.n_all_paths)
    fail ("the leaf's chain has depth %u, AllPaths %zu paths", di.chain_depth, v.info.n_all_paths);
  if (strcmp (v.info.all_paths[0], v.info.leaf_path) != 0)
    fail ("AllPaths starts with %s, the leaf is %s", v.info.all_paths[0], v.info.leaf_path);
  nmlist = 0;
  for (i = 0; i < di.chain_depth; i++)
    madd (v.info.all_paths[i]);
  if (di.chain_depth > 1 && !same_file (di.parent_path, v.info.all_paths[1]))
    fail ("AllPaths names %s as the leaf's parent, the leaf's locator %s",
          v.info.all_paths[1], di.parent_path);
  close_disk (x, "the leaf");
  /* Each snapshot's ParentPathsList is its image's chain. */
  for (i = 0; i < v.nsnaps; i++) {
    const struct vhdkit_snapshot_info *sn = v.snaps[i];
    if (!sn->snapshot_path[0])
      continue;
    x = open_path (pathf ("%s@%s", r->set, sn->snapshot_id), VHDKIT_OPEN_RDONLY);
    if (vhdkit_disk_get_info (x, &di) == -1)
      fail_lib ("disk_get_info of a snapshot");
    if (di.chain_depth != 1 + sn->n_parent_paths)
      fail ("snapshot %s: its image's chain has depth %u, ParentPathsList %zu paths",
            sn->snapshot_id, di.chain_depth, sn->n_parent_paths);
    if (!same_file (di.path, sn->snapshot_path))
      fail ("snapshot %s: SET.vhds@ID opens %s, SnapshotPath is %s", sn->snapshot_id,
            di.path, sn->snapshot_path);
    if (sn->n_parent_paths && !same_file (di.parent_path, sn->parent_paths[0]))
      fail ("snapshot %s: ParentPathsList starts with %s, the image's locator names %s",
            sn->snapshot_id, sn->parent_paths[0], di.parent_path);
    close_disk (x, "a snapshot");
  }
  for (i = 0; i < v.nsnaps; i++) {
    if (v.snaps[i]->snapshot_path[0])
      madd (v.snaps[i]->snapshot_path);
    for (k = 0; k < v.snaps[i]->n_parent_paths; k++)
      madd (v.snaps[i]->parent_paths[k]);
  }
  for (i = 0; i < nmlist; i++) {
    bool listed = false;
    for (k = 0; k < v.info.n_all_paths; k++)
      listed |= strcmp (v.info.all_paths[k], mlist[i]) == 0;
    if (!listed) {
      setview_print (&v);
      fail ("member %s (of the leaf's or a snapshot's chain) is not in AllPaths", mlist[i]);
    }
    if (access (mlist[i], F_OK) != 0)
      fail ("member %s does not exist", mlist[i]);
    if (ends_with (mlist[i], ".vhdx") || ends_with (mlist[i], ".avhdx")) {
      if (vhdkit_check (mlist[i], report_problem, (void *) mlist[i]) != 0)
        fail ("vhdkit_check reports problems in member %s (rc %" PRIu32 ": %s)",
              mlist[i], vhdkit_get_error_code (), vhdkit_get_error ());
    }
  }
  if (optimized)
    for (k = 0; k < v.info.n_all_paths; k++)
      if (!mhas (v.info.all_paths[k])) {
        setview_print (&v);
        fail ("after an optimize AllPaths lists %s, which neither the leaf nor a snapshot needs",
              v.info.all_paths[k]);
      }
  setview_free (&v);
}

/* ---- operations (in this process) ---- */

static void
rnd_range (const struct model *m, uint64_t *off, uint64_t *len)
{
  rnd_range_in (m->size, m->g, UNIT, WBUF, off, len);
}

static void
op_write (struct round *r, bool zero)
{
  struct model *m = &r->m;
  uint64_t off, len;
  uint32_t tag = zero ? 0 : m->nexttag++;

  bool discard = zero && chance (25);

  rnd_range (m, &off, &len);
  setop ("%s %" PRIu64 "+%" PRIu64 " tag %" PRIu32 " (step %" PRIu64 ")",
         discard ? "discard" : zero ? "zero" : "write", off, len, tag, r->step);
  leaf_open (r, true);
  if (discard) {
    if (vhdkit_disk_discard (r->d, len, off, 0) == -1)
      fail_lib ("discard");
  }
  else if (zero) {
    if (vhdkit_disk_zero (r->d, len, off, 0) == -1)
      fail_lib ("zero");
  }
  else {
    fill_pattern (wbuf, off, len, tag);
    if (vhdkit_disk_pwrite (r->d, wbuf, (size_t) len, off, 0) == -1)
      fail_lib ("pwrite");
  }
  model_write (m, off, len, tag);
  check_content (r->d, m->live, off, len, "the leaf after the write");
}

static void
op_checkpoint (struct round *r)
{
  struct model *m = &r->m;
  char id[VHDKIT_RCT_ID_MAX];
  size_t i;

  setop ("rct_checkpoint on the leaf (step %" PRIu64 ")", r->step);
  leaf_open (r, true);
  memset (id, 0, sizeof id);
  if (vhdkit_rct_checkpoint (r->d, id) == -1)
    fail_lib ("rct_checkpoint through SET.vhds");
  if (strncmp (id, "rctX:", 5) != 0)
    fail ("rct_checkpoint returned \"%s\"", id);
  for (i = 0; i < m->npts; i++)
    if (strcmp (m->pts[i].rct, id) == 0)
      fail ("rct_checkpoint returned %s, the RCT ID of %s %s", id,
            kind_name[m->pts[i].kind], m->pts[i].guid);
  /* Keep a few RCT-only points. */
  while (model_count (m, P_RCT) >= MAX_RCT)
    model_forget (m, model_rnd (m, P_RCT));
  model_add_point (m, P_RCT, NULL, id);
  TRACE ("  -> %s", id);
}

static void
rnd_guid (char *out)
{
  uint64_t a = rnd (), b = rnd ();
  snprintf (out, VHDKIT_GUID_STR, "%08" PRIx32 "-%04" PRIx32 "-4%03" PRIx32 "-%04" PRIx32 "-%012" PRIx64,
            (uint32_t) a, (uint32_t) (a >> 32) & 0xffff, (uint32_t) (a >> 48) & 0xfff,
            (uint32_t) (b & 0x3fff) | 0x8000, (b >> 16) & UINT64_C (0xffffffffffff));
}

/* After a snapshot ID has been added (in the library), the model's. */
static void
add_snapshot (struct round *r, const char *id)
{
  struct vhdkit_snapshot_info **s = NULL;
  size_t n = 0;
  const char *ids[1] = { id };

  if (vhdkit_set_get_snapshots (r->set, ids, 1, false, &s, &n) == -1 || n != 1)
    fail_lib (pathf ("get_snapshots of the new snapshot %s", id));
  if (s[0]->snapshot_path[0] == '\0')
    fail ("the new snapshot %s has no image", id);
  if (strncmp (s[0]->rct_id, "rctX:", 5) != 0)
    fail ("the new snapshot %s has RCT ID \"%s\" on a tracked set", id, s[0]->rct_id);
  model_add_point (&r->m, P_SNAP, id, s[0]->rct_id);
  TRACE ("  -> snapshot %s rct %s", id, s[0]->rct_id);
  vhdkit_snapshots_free (s, n);
}

static void
op_snapshot (struct round *r)
{
  char id[VHDKIT_GUID_STR], out[VHDKIT_GUID_STR];
  bool given = chance (50);

  if (given)
    rnd_guid (id);
  setop ("snapshot %s (step %" PRIu64 ")", given ? id : "(no ID)", r->step);
  leaf_close (r);
  memset (out, 0, sizeof out);
  if (vhdkit_set_snapshot (r->set, given ? id : NULL, out) == -1)
    fail_lib ("set_snapshot");
  if (given && strcasecmp (id, out) != 0)
    fail ("snapshot with ID %s returned ID %s", id, out);
  if (model_find (&r->m, out) != SIZE_MAX)
    fail ("snapshot returned the ID %s again", out);
  add_snapshot (r, out);
  if (given && vhdkit_set_snapshot (r->set, id, NULL) != -1)
    fail ("a second snapshot with the existing ID %s succeeded", id);
}

static void
op_delete (struct round *r, size_t i, bool persist)
{
  struct model *m = &r->m;
  char id[VHDKIT_GUID_STR];

  snprintf (id, sizeof id, "%s", m->pts[i].guid);
  setop ("delete %s %s%s (step %" PRIu64 ")", kind_name[m->pts[i].kind], id,
         persist ? " persist_reference" : "", r->step);
  leaf_close (r);
  if (vhdkit_set_delete_snapshot (r->set, id, persist, NULL, NULL) == -1)
    fail_lib ("set_delete_snapshot");
  model_delete (m, i, persist);
  if (!persist && vhdkit_set_delete_snapshot (r->set, id, false, NULL, NULL) != -1)
    fail ("deleting the deleted snapshot %s again succeeded", id);
}

static void
op_apply (struct round *r, size_t i)
{
  struct model *m = &r->m;
  char id[VHDKIT_GUID_STR];

  snprintf (id, sizeof id, "%s", m->pts[i].guid);
  setop ("apply snapshot %s (step %" PRIu64 ")", id, r->step);
  leaf_close (r);
  if (vhdkit_set_apply_snapshot (r->set, id) == -1)
    fail_lib ("set_apply_snapshot");
  model_apply (m, i, false);
  leaf_open (r, true);
  check_content (r->d, m->live, 0, m->size, "the leaf after the apply");
}

static void
op_optimize (struct round *r)
{
  setop ("optimize (step %" PRIu64 ")", r->step);
  leaf_close (r);
  if (vhdkit_set_optimize (r->set, NULL, NULL) == -1)
    fail_lib ("set_optimize");
  check_members (r, true);
}

/* ---- crash steps ---- */

enum { C_WRITE, C_SNAPSHOT, C_DELETE, C_APPLY, C_OPTIMIZE };
static const char *const crash_name[] = { "write", "snapshot", "delete", "apply", "optimize" };

static const char *g_self = "/proc/self/exe";

static void
exec_self (void *argv)
{
  execv (g_self, argv);
  perror ("execv");
  _exit (127);
}

/* Run this binary with ARGV (--op ...) under VHDKIT_SIM=SIM (NULL: not
 * set); return the wait status. */
static int
run_op_child (const char *sim, const char *count_file, char *const argv[])
{
  return in_child (sim, count_file, 0, exec_self, (void *) argv);
}

/* The child: one operation, exit 0 on success, 3 on failure. */
static int
op_main (int argc, char **argv)
{
  const char *kind, *set;
  int r = -1;

  if (argc < 4)
    return 2;
  kind = argv[2];
  set = argv[3];
  if (strcmp (kind, "write") == 0 && argc == 7) {
    uint64_t off = strtoull (argv[4], NULL, 10), len = strtoull (argv[5], NULL, 10);
    uint32_t tag = (uint32_t) strtoul (argv[6], NULL, 10);
    struct vhdkit_disk *d = vhdkit_disk_open (set, VHDKIT_OPEN_RDWR);
    if (d) {
      if (tag) {
        void *b = aligned_alloc (4096, WBUF);
        if (!b)
          return 2;
        fill_pattern (b, off, len, tag);
        r = vhdkit_disk_pwrite (d, b, (size_t) len, off, 0);
        free (b);
      }
      else
        r = vhdkit_disk_zero (d, len, off, 0);
      if (vhdkit_disk_close (d) == -1)
        r = -1;
    }
  }
  else if (strcmp (kind, "snapshot") == 0 && argc == 5)
    r = vhdkit_set_snapshot (set, argv[4], NULL);
  else if (strcmp (kind, "delete") == 0 && argc == 6)
    r = vhdkit_set_delete_snapshot (set, argv[4], strcmp (argv[5], "1") == 0, NULL, NULL);
  else if (strcmp (kind, "apply") == 0 && argc == 5)
    r = vhdkit_set_apply_snapshot (set, argv[4]);
  else if (strcmp (kind, "optimize") == 0 && argc == 4)
    r = vhdkit_set_optimize (set, NULL, NULL);
  else if (strcmp (kind, "busy") == 0 && argc == 4) {
    /* Both must fail with 32774: the parent process has a disk open. */
    bool b1 = vhdkit_set_snapshot (set, NULL, NULL) == -1 && vhdkit_get_error_code () == VHDKIT_RC_IN_USE;
    bool b2 = vhdkit_set_optimize (set, NULL, NULL) == -1 && vhdkit_get_error_code () == VHDKIT_RC_IN_USE;
    return b1 && b2 ? 0 : 3;
  }
  else {
    fprintf (stderr, "test-set-model --op: bad arguments\n");
    return 2;
  }
  if (r == -1) {
    fprintf (stderr, "test-set-model --op %s: failed: rc %" PRIu32 ", errno %d: %s\n",
             kind, vhdkit_get_error_code (), vhdkit_get_errno (), vhdkit_get_error ());
    return 3;
  }
  return 0;
}

/* One crash step: the operation on a copy under count, then on the set
 * under crash, then verify and continue from what is found.  NESTED: an
 * optimize crashed while finishing what the crash before left. */
static void
crash_step (struct round *r, bool nested)
{
  struct model *m = &r->m;
  char a_off[32], a_len[32], a_tag[32], a_id[VHDKIT_GUID_STR], a_persist[4];
  char *argv[8];
  char sim[128], why[64], cdir[700], cset[700], count_file[700];
  char ctx_save[512];
  int kind, st;
  uint64_t off = 0, len = 0, syncs, k, simseed;
  uint32_t tag = 0;
  size_t si = SIZE_MAX, i;
  bool persist = false, newstate;
  uint32_t *oldlive;
  struct setview before, after;
  struct event *e;

  /* The operation. */
  for (kind = C_OPTIMIZE; !nested;) {
    unsigned p = (unsigned) rnd_below (100);
    kind = p < 30 ? C_WRITE : p < 50 ? C_SNAPSHOT : p < 75 ? C_DELETE : p < 90 ? C_APPLY : C_OPTIMIZE;
    if ((kind == C_DELETE || kind == C_APPLY) && model_count (m, P_SNAP) == 0)
      continue;
    if (kind == C_SNAPSHOT && model_count (m, P_SNAP) >= MAX_SNAPS)
      continue;
    break;
  }
  argv[0] = (char *) "test-set-model";
  argv[1] = (char *) "--op";
  argv[2] = (char *) crash_name[kind];
  argv[3] = r->set;
  argv[4] = NULL;
  switch (kind) {
  case C_WRITE:
    rnd_range (m, &off, &len);
    tag = chance (20) ? 0 : m->nexttag++;
    snprintf (a_off, sizeof a_off, "%" PRIu64, off);
    snprintf (a_len, sizeof a_len, "%" PRIu64, len);
    snprintf (a_tag, sizeof a_tag, "%" PRIu32, tag);
    argv[4] = a_off; argv[5] = a_len; argv[6] = a_tag; argv[7] = NULL;
    break;
  case C_SNAPSHOT:
    rnd_guid (a_id);
    argv[4] = a_id; argv[5] = NULL;
    break;
  case C_DELETE:
    si = chance (20) && model_count (m, P_REF) ? model_rnd (m, P_REF) : model_rnd (m, P_SNAP);
    persist = chance (40);
    snprintf (a_id, sizeof a_id, "%s", m->pts[si].guid);
    snprintf (a_persist, sizeof a_persist, "%d", persist);
    argv[4] = a_id; argv[5] = a_persist; argv[6] = NULL;
    break;
  case C_APPLY:
    si = model_rnd (m, P_SNAP);
    snprintf (a_id, sizeof a_id, "%s", m->pts[si].guid);
    argv[4] = a_id; argv[5] = NULL;
    break;
  default:
    break;
  }
  leaf_close (r);
  setview_get (r, &before);
  check_records (r, &before);

  /* Count the syncs on a copy. */
  snprintf (cdir, sizeof cdir, "%s.count", r->dir);
  snprintf (cset, sizeof cset, "%s/%s", cdir, strrchr (r->set, '/') + 1);
  snprintf (count_file, sizeof count_file, "%s/count", g_dir);
  copy_tree (r->dir, cdir);
  unlink (count_file);
  argv[3] = cset;
  st = run_op_child ("count", count_file, argv);
  argv[3] = r->set;
  if (!exited (st, 0)) {
    describe_status (why, sizeof why, st);
    fail ("crash step: the %s on a copy of the set under VHDKIT_SIM=count: %s", crash_name[kind], why);
  }
  syncs = read_syncs (count_file, NULL, 0);
  rm_tree (cdir);

  /* Crash it. */
  /* Commit points are mostly among the last syncs: weigh them. */
  switch (syncs ? rnd_below (20) : 99) {
  case 99: k = 0; break;
  case 0: case 1: k = 1; break;
  case 2: case 3: case 4: k = syncs; break;
  case 5: case 6: case 7: case 8: case 9:
    k = syncs - rnd_below (syncs < 4 ? syncs : 4);
    break;
  default: k = 1 + rnd_below (syncs); break;
  }
  simseed = rnd_below (1000000);
  snprintf (sim, sizeof sim, "crash:n=%" PRIu64 ":seed=%" PRIu64, k, simseed);
  {
    char desc[160];
    switch (kind) {
    case C_WRITE:
      snprintf (desc, sizeof desc, "%s %" PRIu64 "+%" PRIu64 " tag %" PRIu32 " + close",
                tag ? "write" : "zero", off, len, tag);
      break;
    case C_SNAPSHOT: case C_APPLY:
      snprintf (desc, sizeof desc, "%s %s", crash_name[kind], a_id);
      break;
    case C_DELETE:
      snprintf (desc, sizeof desc, "delete %s %s%s", kind_name[m->pts[si].kind], a_id,
                persist ? " persist_reference" : "");
      break;
    default:
      snprintf (desc, sizeof desc, "optimize");
      break;
    }
    setop ("CRASH %s (VHDKIT_SIM=%s, of %" PRIu64 " syncs the op makes; step %" PRIu64 ")",
           desc, sim, syncs, r->step);
  }
  snprintf (ctx_save, sizeof ctx_save, "%s", g_ctx);
  snprintf (g_ctx + strlen (g_ctx), sizeof g_ctx - strlen (g_ctx), " crash %s VHDKIT_SIM=%s",
            crash_name[kind], sim);
  st = run_op_child (syncs ? sim : NULL, NULL, argv);
  if (syncs ? !exited (st, SIM_EXIT_CRASH) : !exited (st, 0)) {
    describe_status (why, sizeof why, st);
    fail ("the crash child: %s, expected %s", why, syncs ? "the simulated crash (exit 99)" : "success (no sync to crash at)");
  }
  r->crashes++;

  /* What is there now? */
  oldlive = xcalloc (m->units, sizeof *oldlive);
  memcpy (oldlive, m->live, m->units * sizeof *oldlive);
  setview_get (r, &after);        /* vhdkit_set_get_info must succeed */
  newstate = false;
  switch (kind) {
  case C_SNAPSHOT:
    newstate = setview_find (&after, a_id) != NULL;
    break;
  case C_DELETE: {
    const struct vhdkit_snapshot_info *s = setview_find (&after, a_id);
    if (m->pts[si].kind == P_SNAP)
      newstate = s == NULL || (persist && s->snapshot_path[0] == '\0');
    else
      newstate = s == NULL || persist;
    if (persist && m->pts[si].kind == P_REF && s == NULL)
      fail ("a crashed delete with persist_reference of reference point %s removed it", a_id);
    break;
  }
  case C_APPLY:
    newstate = strcmp (before.info.leaf_path, after.info.leaf_path) != 0;
    break;
  default:
    break;
  }
  if (kind != C_WRITE)
    TRACE ("  the crash left the %s state", newstate ? "new" : "old");
  if (kind == C_WRITE)
    ;
  else if (newstate)
    r->crash_new++;
  else
    r->crash_old++;
  /* Every snapshot of the old state (the deleted one only if still
   * there) reads its content. */
  for (i = 0; i < m->npts; i++)
    if (m->pts[i].kind == P_SNAP && !(kind == C_DELETE && newstate && i == si)) {
      if (!setview_find (&after, m->pts[i].guid)) {
        setview_print (&after);
        fail ("after the crash snapshot %s is gone", m->pts[i].guid);
      }
      check_snapshot (r, &m->pts[i], true);
    }
  /* The model continues from the state found. */
  switch (kind) {
  case C_SNAPSHOT:
    if (newstate)
      add_snapshot (r, a_id);
    break;
  case C_DELETE:
    if (newstate)
      model_delete (m, si, persist);
    break;
  default:
    break;
  }
  check_records (r, &after);
  if (kind == C_SNAPSHOT && newstate)
    check_snapshot (r, &m->pts[m->npts - 1], true);

  /* The leaf: old or new content. */
  leaf_open (r, true);
  if (kind == C_WRITE) {
    uint64_t landed = 0, u;
    read_tags (r->d, m, m->live);
    e = model_event (m, true, "crashed write");
    for (u = 0; u < m->units; u++) {
      bool inr = u >= off / UNIT && u < (off + len) / UNIT;
      if (m->live[u] == oldlive[u])
        continue;
      if (!inr || m->live[u] != tag)
        fail ("after a crashed %s of %" PRIu64 "+%" PRIu64 " the leaf at %" PRIu64
              " holds tag %" PRIu32 ": neither the old content (tag %" PRIu32 ") nor the new",
              tag ? "write" : "zero", off, len, u * UNIT, m->live[u], oldlive[u]);
      bm_set (e->bm, u, u + 1);
      landed++;
    }
    TRACE ("  %" PRIu64 " of %" PRIu64 " units landed", landed, len / UNIT);
  }
  else if (kind == C_APPLY && newstate) {
    model_apply (m, si, true);
    check_content (r->d, m->live, 0, m->size, "the leaf after a crashed apply (new state: the snapshot's content)");
  }
  else {
    check_content (r->d, m->live, 0, m->size,
                   pathf ("the leaf after a crashed %s (%s state: the old content)",
                          crash_name[kind], newstate ? "new" : "old"));
    model_event (m, true, pathf ("crashed %s", crash_name[kind]));
  }
  setview_free (&before);
  setview_free (&after);
  free (oldlive);

  /* No false negatives (exact where no crash lies between). */
  check_queries (r, true, 0);
  check_all_snapshots (r, true);
  /* Sometimes the set is written before anything finishes what the
   * crash left (a pending merge, say): disk calls work meanwhile. */
  if (chance (50)) {
    unsigned w, nw = 1 + (unsigned) rnd_below (4);
    for (w = 0; w < nw; w++)
      op_write (r, chance (20));
    leaf_close (r);
    leaf_open (r, true);
    check_content (r->d, m->live, 0, m->size, "the leaf after writes that followed the crash");
    check_queries (r, true, 0);
  }
  /* Optimize finishes whatever was left (and may crash doing so). */
  if (!nested && chance (30)) {
    snprintf (g_ctx, sizeof g_ctx, "%s", ctx_save);
    crash_step (r, true);
    return;
  }
  setop ("optimize after the crash (step %" PRIu64 ")", r->step);
  leaf_close (r);
  if (vhdkit_set_optimize (r->set, NULL, NULL) == -1)
    fail_lib ("set_optimize after the crash");
  check_members (r, true);
  leaf_open (r, true);
  check_content (r->d, m->live, 0, m->size, "the leaf after the optimize after the crash");
  check_queries (r, true, 0);
  check_all_snapshots (r, true);
  snprintf (g_ctx, sizeof g_ctx, "%s", ctx_save);
}

/* ---- a round ---- */

static void
create_base (struct round *r)
{
  const struct config *c = r->c;
  struct model *m = &r->m;
  struct vhdkit_create_params p = VHDKIT_CREATE_PARAMS_INIT;
  struct vhdkit_disk *d;
  unsigned k;

  memset (&p, 0, sizeof p);
  p.struct_size = sizeof p;
  p.format = VHDKIT_FORMAT_VHDX;
  p.type = VHDKIT_TYPE_DYNAMIC;
  p.size = c->size;
  p.block_size = c->block;
  p.logical_sector_size = 512;
  setop ("create base %s", r->base);
  if (vhdkit_disk_create (r->base, &p) == -1)
    fail_lib ("create the base");
  if (!c->prefill && !c->pretrack)
    return;
  d = open_path (r->base, VHDKIT_OPEN_RDWR);
  if (c->pretrack && vhdkit_rct_enable (d, c->g) == -1)
    fail_lib ("rct_enable on the base");
  for (k = 0; c->prefill && k < 12; k++) {
    uint64_t off, len;
    uint32_t tag = m->nexttag++, u;
    rnd_range (m, &off, &len);
    fill_pattern (wbuf, off, len, tag);
    if (vhdkit_disk_pwrite (d, wbuf, (size_t) len, off, 0) == -1)
      fail_lib ("prefill the base");
    for (u = (uint32_t) (off / UNIT); u < (off + len) / UNIT; u++)
      m->live[u] = tag;
  }
  close_disk (d, "the base");
}

static void
round_run (const struct config *c, unsigned idx, uint64_t steps, uint64_t crashes)
{
  struct round rr, *r = &rr;
  struct model *m = &r->m;
  struct setview v;
  double t0 = now_s ();
  /* The first half of the round is clean (so that long histories are
   * checked exactly), crashes are spread over the second half. */
  uint64_t crash_from = !crashes ? steps : 2 * crashes <= steps ? steps / 2 :
    crashes >= steps ? 0 : steps - crashes, crash_done = 0;
  uint64_t crash_every = crashes ? (steps - crash_from) / crashes : 0;

  memset (r, 0, sizeof *r);
  r->c = c;
  r->idx = idx;
  snprintf (r->dir, sizeof r->dir, "%s/round%u", g_dir, idx);
  snprintf (r->base, sizeof r->base, "%s/B.vhdx", r->dir);
  snprintf (r->set, sizeof r->set, "%s/B.vhds", r->dir);
  snprintf (g_ctx, sizeof g_ctx, "round %u config %s setup", idx, c->name);
  mkdir (r->dir, 0755);
  model_init (m, c);
  create_base (r);
  setop ("set_convert %s G=%" PRIu32, r->base, c->convert_g);
  if (vhdkit_set_convert (r->base, NULL, c->convert_g) == -1)
    fail_lib ("set_convert");
  setview_get (r, &v);
  if (v.nsnaps != 0 || strcmp (strrchr (v.info.leaf_path, '/'), "/B.vhdx") != 0)
    fail ("a new set has %zu records and leaf %s", v.nsnaps, v.info.leaf_path);
  setview_free (&v);
  leaf_open (r, true);
  check_content (r->d, m->live, 0, m->size, "the leaf of the new set");

  for (r->step = 0; r->step < steps; r->step++) {
    unsigned p = (unsigned) rnd_below (1000);
    size_t ns = model_count (m, P_SNAP), i;
    uint64_t off, len;

    snprintf (g_ctx, sizeof g_ctx, "round %u config %s step %" PRIu64 " (model: %zu snapshots, "
              "%zu points, %zu events)", idx, c->name, r->step, ns, m->npts, m->nev);
    if (crashes && r->step >= crash_from && crash_done < crashes &&
        (crash_every <= 1 || (r->step - crash_from) % crash_every == 0)) {
      crash_step (r, false);
      crash_done++;
      continue;
    }
    if (p < 300)
      op_write (r, false);
    else if (p < 360)
      op_write (r, true);
    else if (p < 420) {                 /* a burst of small writes */
      unsigned k, nk = 2 + (unsigned) rnd_below (10);
      for (k = 0; k < nk; k++)
        op_write (r, chance (15));
    }
    else if (p < 500)
      op_checkpoint (r);
    else if (p < 610) {
      if (ns >= MAX_SNAPS)
        op_delete (r, model_rnd (m, P_SNAP), chance (40));
      else
        op_snapshot (r);
    }
    else if (p < 700) {
      if (ns == 0)
        op_snapshot (r);
      else
        op_delete (r, model_rnd (m, P_SNAP), chance (40) && model_count (m, P_REF) < MAX_REFS);
    }
    else if (p < 720) {
      i = model_rnd (m, P_REF);
      if (i != SIZE_MAX)
        op_delete (r, i, chance (20));
      else
        op_checkpoint (r);
    }
    else if (p < 800) {
      if (ns == 0)
        op_snapshot (r);
      else
        op_apply (r, model_rnd (m, P_SNAP));
    }
    else if (p < 830)
      op_optimize (r);
    else if (p < 880) {
      bool ro = chance (30);
      setop ("close+reopen%s (step %" PRIu64 ")", ro ? " read-only" : "", r->step);
      leaf_close (r);
      leaf_open (r, !ro);
      check_content (r->d, m->live, 0, m->size, "the leaf after reopening");
      check_queries (r, false, 2);
      leaf_open (r, true);
    }
    else if (p < 910)
      check_errors (r);
    else
      op_write (r, false);

    /* Every step: every point against the live state, two random pairs,
     * a window of the leaf and of one snapshot; every few steps all of
     * it and vhdkit_check. */
    leaf_open (r, true);
    if ((r->step + 1) % FULL_EVERY == 0) {
      check_errors (r);
      check_queries (r, true, 0);
      check_content (r->d, m->live, 0, m->size, "the leaf");
      check_all_snapshots (r, true);
      check_members (r, false);
    }
    else {
      check_queries (r, false, 2);
      rnd_window (m, &off, &len);
      check_content (r->d, m->live, off, len, "the leaf");
      i = model_rnd (m, P_SNAP);
      if (i != SIZE_MAX)
        check_snapshot (r, &m->pts[i], false);
    }
  }
  snprintf (g_ctx, sizeof g_ctx, "round %u config %s final", idx, c->name);
  setop ("final optimize");
  leaf_close (r);
  if (vhdkit_set_optimize (r->set, NULL, NULL) == -1)
    fail_lib ("set_optimize");
  check_members (r, true);
  leaf_open (r, false);
  check_content (r->d, m->live, 0, m->size, "the leaf");
  check_queries (r, true, 0);
  check_all_snapshots (r, true);
  leaf_close (r);
  fprintf (stderr, "# round %u (%s): %" PRIu64 " steps, %" PRIu64 " crashes (%" PRIu64
           " of other ops left the new state, %" PRIu64 " the old), %zu points at the end, %zu events, %"
           PRIu64 " queries (%" PRIu64 " calls), %.1fs\n", idx, c->name, steps, r->crashes,
           r->crash_new, r->crash_old, m->npts, m->nev, r->queries, r->calls, now_s () - t0);
  model_free (m);
}

/* ---- main ---- */

struct round_job { const struct config *c; unsigned idx; uint64_t steps, crashes, seed; };

static void
round_child (void *arg)
{
  const struct round_job *j = arg;

  rng = j->seed;
  round_run (j->c, j->idx, j->steps, j->crashes);
}

int
main (int argc, char **argv)
{
  uint64_t steps, crashes, per_round = 150, left, cleft;
  unsigned idx = 0, nrounds;
  int status = 0;
  char why[64];
  double t0 = now_s ();

  if (!alloc_bufs (WBUF))
    return 2;
  if (argc >= 2 && strcmp (argv[1], "--op") == 0)
    return op_main (argc, argv);

  steps = env_u64 ("VHDKIT_SET_MODEL_STEPS", 450);
  crashes = env_u64 ("VHDKIT_SET_MODEL_CRASHES", steps / 8);
  model_start (steps, crashes);
  if (access ("/proc/self/exe", X_OK) != 0) {
    fprintf (stderr, "test-set-model: no /proc/self/exe to run crash children; skipped\n");
    return 77;
  }
  if (make_work_dir () == -1)
    return 2;

  nrounds = (unsigned) ((steps + per_round - 1) / per_round);
  if (nrounds < 1)
    nrounds = 1;
  for (left = steps, cleft = crashes; idx < nrounds && status == 0; idx++) {
    struct round_job j;
    int st;

    j.c = &configs[idx % NCONFIGS];
    j.idx = idx;
    j.steps = left < per_round ? left : per_round;
    j.crashes = idx + 1 == nrounds ? cleft : crashes / nrounds;
    if (j.crashes > cleft)
      j.crashes = cleft;
    j.seed = rnd ();
    st = in_child (NULL, NULL, 1800, round_child, &j);
    if (!exited (st, 0)) {
      describe_status (why, sizeof why, st);
      fprintf (stderr, "FAIL [seed=%" PRIu64 "] round %u (%s): %s\n", g_seed, idx, j.c->name, why);
      status = 1;
    }
    left -= j.steps;
    cleft -= j.crashes;
    if (status == 0 && !keep_dir ())
      rm_tree (pathf ("%s/round%u", g_dir, idx));
  }

  return model_finish (status, pathf (", %.1fs", now_s () - t0));
}
