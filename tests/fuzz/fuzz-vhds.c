/* libFuzzer target for VHD Set files (docs/FORMAT-vhds.md).
 *
 * At start-up a folder in /dev/shm gets a valid small set made through
 * the public API: base.vhdx converted to base.vhds, written, two
 * snapshots, written again (base <- middle <- leaf, two records), plus a
 * few files that a damaged set could name: "j" (not a VHDX), "d" (a
 * directory), "s" (a symbolic link to base.vhdx, inside the folder) and
 * "l" (a symbolic link to a file outside the folder, VS-2).
 *
 * Each input becomes the folder's base.vhds:
 *  - an input that starts with "VHDKSET1" is the whole file;
 *  - any other input is a list of patches [u32 offset][u8 len][bytes]
 *    applied to the template's .vhds.  Offset bit 31 picks copy B (else
 *    copy A), bit 30 places the patch anywhere in the copy's MiB (low 20
 *    bits; else in its first 4 KiB, low 12 bits), and a patch of length
 *    0 truncates the file there.
 * Then the CRC of each copy is recomputed, so that the fuzzer gets past
 * the checksum to the structure, unless the copy's last reserved header
 * byte (offset 127, ignored by the format) has bit 0 set: that copy
 * keeps the CRC it has.
 *
 * The calls are read-only: vhdkit_set_get_info, vhdkit_set_get_snapshots
 * (with parents, all and by ID), vhdkit_disk_open of the set and of
 * "base.vhds@<id>" with reads and vhdkit_disk_get_changes by snapshot ID.
 * Anything but a clean error or a plausible answer is a bug, and so is
 * any change to a file of the folder other than the one the harness wrote
 * (checked after every input; the harness aborts naming the file rather
 * than restoring it).  The unpatched template must answer exactly. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "vhdkit.h"

#define SLOT (1u << 20)                 /* copy B's offset, a copy's room */
#define HDR 128
#define DISK_SIZE (8u << 20)

static char dir[80], outdir[96], setp[112], outside[128];
static uint8_t *tset;                   /* the template's .vhds */
static size_t tset_size;
static char tids[2][VHDKIT_GUID_STR];   /* the template's snapshot IDs */

/* The folder's entries and their state, to detect any change. */
#define MAX_ENTRIES 32
static struct entry {
  char name[256];
  struct stat st;
} entries[MAX_ENTRIES];
static size_t n_entries;

/* FUZZ_VHDS_VERBOSE=1 in the environment: say what each call answered. */
static int verbose = -1;

static void
say (const char *call, int r)
{
  if (verbose == -1) verbose = getenv ("FUZZ_VHDS_VERBOSE") != NULL;
  if (verbose)
    fprintf (stderr, "fuzz-vhds: %s: %s\n", call,
             r == 0 ? "ok" : vhdkit_get_error ());
}

static void
die (const char *what)
{
  fprintf (stderr, "fuzz-vhds: %s: %s\n", what, vhdkit_get_error ());
  abort ();
}

/* ---- CRC-32C, from the polynomial (independent of the library) ---- */

static uint32_t crc_table[256];

static uint32_t
crc32c (const uint8_t *p, size_t n)
{
  uint32_t c = 0xFFFFFFFFu;

  if (!crc_table[1])
    for (uint32_t i = 0; i < 256; i++) {
      uint32_t v = i;
      for (int k = 0; k < 8; k++)
        v = v & 1 ? (v >> 1) ^ 0x82F63B78u : v >> 1;
      crc_table[i] = v;
    }
  while (n--)
    c = crc_table[(c ^ *p++) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

static uint32_t
le32 (const uint8_t *p)
{
  return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 |
         (uint32_t) p[3] << 24;
}

/* ---- files ---- */

static uint8_t *
slurp (const char *p, size_t *n)
{
  int fd = open (p, O_RDONLY);
  if (fd == -1) abort ();
  off_t sz = lseek (fd, 0, SEEK_END);
  uint8_t *b = malloc ((size_t) sz + 1);
  if (!b || pread (fd, b, (size_t) sz, 0) != sz) abort ();
  close (fd);
  *n = (size_t) sz;
  return b;
}

/* Write B as the file P, sparsely: only its non-zero 4 KiB pages. */
static void
put (const char *p, const uint8_t *b, size_t n)
{
  static const uint8_t zero[4096];
  int fd = open (p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd == -1 || ftruncate (fd, (off_t) n) == -1) abort ();
  for (size_t o = 0; o < n; o += 4096) {
    size_t len = n - o < 4096 ? n - o : 4096;
    if (memcmp (b + o, zero, len) != 0 &&
        pwrite (fd, b + o, len, (off_t) o) != (ssize_t) len)
      abort ();
  }
  close (fd);
}

static void
remove_all (const char *d)
{
  DIR *h = opendir (d);
  struct dirent *e;
  char p[512];

  while (h && (e = readdir (h))) {
    if (!strcmp (e->d_name, ".") || !strcmp (e->d_name, ".."))
      continue;
    snprintf (p, sizeof p, "%s/%s", d, e->d_name);
    if (unlink (p) == -1)
      rmdir (p);
  }
  if (h) closedir (h);
  rmdir (d);
}

static void
cleanup (void)
{
  remove_all (dir);
  remove_all (outdir);
}

/* Remember the state of every entry of the folder but the set file. */
static void
snapshot_entries (void)
{
  DIR *h = opendir (dir);
  struct dirent *e;

  n_entries = 0;
  while (h && (e = readdir (h))) {
    if (!strcmp (e->d_name, ".") || !strcmp (e->d_name, "..") ||
        !strcmp (e->d_name, "base.vhds"))
      continue;
    if (n_entries == MAX_ENTRIES) abort ();
    struct entry *x = &entries[n_entries++];
    snprintf (x->name, sizeof x->name, "%s", e->d_name);
    char p[512];
    snprintf (p, sizeof p, "%s/%s", dir, e->d_name);
    if (lstat (p, &x->st) == -1) abort ();
  }
  if (h) closedir (h);
}

static int
same_stat (const struct stat *a, const struct stat *b)
{
  return a->st_ino == b->st_ino && a->st_mode == b->st_mode &&
         a->st_size == b->st_size && a->st_nlink == b->st_nlink &&
         a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
         a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
         a->st_ctim.tv_sec == b->st_ctim.tv_sec &&
         a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* Every member and other file is as the template left it, no file came
 * or went, and the set file is as the harness wrote it (SET_ST). */
static void
check_unchanged (const struct stat *set_st)
{
  char p[512];
  struct stat st;
  size_t n = 0;

  for (size_t i = 0; i < n_entries; i++) {
    snprintf (p, sizeof p, "%s/%s", dir, entries[i].name);
    if (lstat (p, &st) == -1 || !same_stat (&st, &entries[i].st)) {
      fprintf (stderr, "fuzz-vhds: read-only calls changed or removed %s\n", p);
      abort ();
    }
  }
  DIR *h = opendir (dir);
  struct dirent *e;
  while (h && (e = readdir (h)))
    if (strcmp (e->d_name, ".") && strcmp (e->d_name, ".."))
      n++;
  if (h) closedir (h);
  if (n != n_entries + (set_st != NULL)) {
    fprintf (stderr, "fuzz-vhds: read-only calls left %zu entries in %s, expected %zu\n",
             n, dir, n_entries + (set_st != NULL));
    abort ();
  }
  if (set_st && (lstat (setp, &st) == -1 || !same_stat (&st, set_st))) {
    fprintf (stderr, "fuzz-vhds: read-only calls changed %s\n", setp);
    abort ();
  }
}

/* ---- the template ---- */

static void
write_at (const char *path, int byte, size_t len, uint64_t off)
{
  static uint8_t buf[65536];
  struct vhdkit_disk *d = vhdkit_disk_open (path, VHDKIT_OPEN_RDWR);

  if (!d) die (path);
  memset (buf, byte, sizeof buf);
  if (vhdkit_disk_pwrite (d, buf, len, off, 0) == -1) die ("pwrite");
  if (vhdkit_disk_close (d) == -1) die ("close");
}

static void
make_template (void)
{
  char base[160], p[256];
  const char *shm = access ("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";

  snprintf (dir, sizeof dir, "%s/vhdkit-fuzz-vhds-%d", shm, (int) getpid ());
  snprintf (outdir, sizeof outdir, "%s-out", dir);
  remove_all (dir);
  remove_all (outdir);
  if (mkdir (dir, 0700) == -1 || mkdir (outdir, 0700) == -1) abort ();
  atexit (cleanup);
  snprintf (base, sizeof base, "%s/base.vhdx", dir);
  snprintf (setp, sizeof setp, "%s/base.vhds", dir);

  struct vhdkit_create_params cp = { .struct_size = sizeof (struct vhdkit_create_params), 
    .format = VHDKIT_FORMAT_VHDX, .size = DISK_SIZE, .block_size = 1u << 20,
  };
  if (vhdkit_disk_create (base, &cp) == -1) die ("create");
  write_at (base, 0x11, 4096, 0);
  write_at (base, 0x22, 65536, 1u << 20);
  if (vhdkit_set_convert (base, NULL, 4096) == -1) die ("set_convert");
  if (vhdkit_set_snapshot (setp, NULL, tids[0]) == -1) die ("set_snapshot 1");
  write_at (setp, 0x33, 4096, 2u << 20);
  if (vhdkit_set_snapshot (setp, NULL, tids[1]) == -1) die ("set_snapshot 2");
  write_at (setp, 0x44, 8192, 4u << 20);
  struct vhdkit_disk *d = vhdkit_disk_open (setp, VHDKIT_OPEN_RDWR);
  if (!d || vhdkit_disk_zero (d, 4096, 1u << 20, 0) == -1 ||
      vhdkit_disk_close (d) == -1)
    die ("zero");
  tset = slurp (setp, &tset_size);
  if (tset_size < HDR || memcmp (tset, "VHDKSET1", 8) != 0) abort ();

  /* Names a damaged set could use. */
  snprintf (p, sizeof p, "%s/j", dir);
  put (p, (const uint8_t *) "not a virtual disk\n", 19);
  snprintf (p, sizeof p, "%s/d", dir);
  if (mkdir (p, 0700) == -1) abort ();
  snprintf (p, sizeof p, "%s/s", dir);
  if (symlink ("base.vhdx", p) == -1) abort ();
  snprintf (outside, sizeof outside, "%s/x.avhdx", outdir);
  put (outside, (const uint8_t *) "outside\n", 8);
  snprintf (p, sizeof p, "%s/l", dir);
  if (symlink (outside, p) == -1) abort ();
  snapshot_entries ();
}

/* ---- the input ---- */

static void
fix_crcs (uint8_t *b, size_t n)
{
  for (size_t c = 0; c < 2; c++) {
    size_t at = c * SLOT;
    if (n < at + HDR || memcmp (b + at, "VHDKSET1", 8) != 0 || (b[at + 127] & 1))
      continue;
    uint32_t len = le32 (b + at + 24);
    if (len < HDR || len > SLOT || at + len > n)
      continue;
    memset (b + at + 8, 0, 4);
    uint32_t crc = crc32c (b + at, len);
    memcpy (b + at + 8, &crc, 4);       /* little-endian hosts */
  }
}

/* The file the input describes; *N its size. */
static uint8_t *
build (const uint8_t *data, size_t size, size_t *n)
{
  uint8_t *b;

  if (size >= 8 && memcmp (data, "VHDKSET1", 8) == 0) {
    b = malloc (size ? size : 1);
    if (!b) abort ();
    memcpy (b, data, size);
    *n = size;
  }
  else {
    size_t cap = 2 * SLOT;              /* room for both copies */
    b = calloc (1, cap);
    if (!b) abort ();
    memcpy (b, tset, tset_size);
    *n = tset_size;
    size_t i = 0;
    while (i + 5 <= size) {
      uint32_t off = le32 (data + i);
      size_t len = data[i + 4];
      i += 5;
      if (len > size - i) len = size - i;
      size_t pos = (off >> 31) ? SLOT : 0;
      pos += (off & 0x40000000u) ? (off & (SLOT - 1)) : (off & 0xfff);
      if (len == 0) {
        if (pos < *n) *n = pos;
        continue;
      }
      if (pos + len > cap) len = cap - pos;
      memcpy (b + pos, data + i, len);
      if (pos + len > *n) {
        /* Bytes past the old end read as zeros, as in a sparse file. */
        *n = pos + len;
      }
      i += len;
    }
  }
  fix_crcs (b, *n);
  return b;
}

/* ---- the calls ---- */

/* Page through the changes since LIMIT (to TARGET) over the disk with a
 * small cap and check the contract of every page (§3.4, §3.5).  Returns
 * 0 if every page succeeded, -1 at the first failure; COVER, if given,
 * receives the bytes of the three template writes after snapshot 1 that
 * the answer covers. */
static const uint64_t after1[3][2] = {
  { 1u << 20, 4096 }, { 2u << 20, 4096 }, { 4u << 20, 8192 },
};

static int
changes (struct vhdkit_disk *d, const char *limit, const char *target,
         uint64_t size, uint64_t *cover)
{
  uint64_t off = 0;
  int rounds = 0;

  while (off < size && rounds++ < 512) {
    struct vhdkit_changes c = VHDKIT_CHANGES_INIT;
    if (vhdkit_disk_get_changes (d, limit, target, off, size - off, 4, &c) == -1)
      return -1;
    if (c.processed == 0 || c.processed > size - off) abort ();
    for (size_t k = 0; k < c.count; k++) {
      if (c.lengths[k] == 0 || c.offsets[k] < off ||
          c.offsets[k] + c.lengths[k] > off + c.processed ||
          (k && c.offsets[k] <= c.offsets[k - 1] + c.lengths[k - 1]))
        abort ();
      for (int m = 0; cover && m < 3; m++) {
        uint64_t a = after1[m][0], e = a + after1[m][1];
        uint64_t lo = c.offsets[k] > a ? c.offsets[k] : a;
        uint64_t hi = c.offsets[k] + c.lengths[k] < e ? c.offsets[k] + c.lengths[k] : e;
        if (lo < hi) cover[m] += hi - lo;
      }
    }
    off += c.processed;
    vhdkit_changes_free (&c);
  }
  return off >= size ? 0 : -1;
}

/* Read a few places of the disk; with WANT, compare with what the
 * template wrote (WANT 2: the leaf, 0: snapshot 1). */
static void
reads (struct vhdkit_disk *d, int want)
{
  static uint8_t buf[65536];
  uint64_t size = 0;
  uint32_t lss = 0;

  if (vhdkit_disk_get_size (d, &size, &lss) == -1) {
    if (want >= 0) die ("get_size");
    return;
  }
  if (want >= 0 && (size != DISK_SIZE || lss != 512)) abort ();
  if (lss != 512 && lss != 4096) return;
  const uint64_t at[] = { 0, 1u << 20, 2u << 20, 4u << 20, size - lss };
  for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
    if (size < lss || at[i] + lss > size) continue;
    int r = vhdkit_disk_pread (d, buf, i == 0 ? sizeof buf : lss, at[i], 0);
    if (want < 0) continue;
    if (r == -1) die ("pread");
    int expect;
    switch (i) {
    case 0: expect = 0x11; break;
    case 1: expect = want == 2 ? 0 : 0x22; break;
    case 2: expect = want == 2 ? 0x33 : 0; break;
    case 3: expect = want == 2 ? 0x44 : 0; break;
    default: expect = 0; break;
    }
    for (size_t k = 0; k < lss; k++)
      if (buf[k] != expect) {
        fprintf (stderr, "fuzz-vhds: template read at %llu: 0x%02x, expected 0x%02x\n",
                 (unsigned long long) at[i], buf[k], expect);
        abort ();
      }
  }
  struct vhdkit_disk_info info = VHDKIT_DISK_INFO_INIT;
  if (vhdkit_disk_get_info (d, &info) == -1 && want >= 0) die ("get_info");
}

static void
exercise (bool pristine)
{
  char ids[3][VHDKIT_GUID_STR], rct[VHDKIT_RCT_ID_MAX] = "";
  size_t n_ids = 0;
  char p[256];

  vhdkit_probe_format (setp);

  struct vhdkit_set_info si = VHDKIT_SET_INFO_INIT;
  int r = vhdkit_set_get_info (setp, &si);
  say ("set_get_info", r);
  if (r == 0) {
    if (!si.path || !si.leaf_path || si.n_all_paths == 0 ||
        (si.n_snapshot_ids && !si.snapshot_ids))
      abort ();
    for (size_t i = 0; i < si.n_all_paths; i++)
      if (!si.all_paths[i]) abort ();
    for (size_t i = 0; i < si.n_snapshot_ids; i++)
      if (!si.snapshot_ids[i]) abort ();
    if (pristine && (si.n_snapshot_ids != 2 || si.n_all_paths < 3)) abort ();
    vhdkit_set_info_free (&si);
  }
  else if (pristine)
    die ("set_get_info");

  struct vhdkit_snapshot_info **s = NULL;
  size_t n = 0;
  r = vhdkit_set_get_snapshots (setp, NULL, 0, true, &s, &n);
  say ("set_get_snapshots", r);
  if (r == 0) {
    for (size_t i = 0; i < n; i++) {
      if (!s[i]->file_path || !s[i]->snapshot_path ||
          (s[i]->n_parent_paths && !s[i]->parent_paths) ||
          strnlen (s[i]->snapshot_id, VHDKIT_GUID_STR) == VHDKIT_GUID_STR ||
          strnlen (s[i]->rct_id, VHDKIT_RCT_ID_MAX) == VHDKIT_RCT_ID_MAX)
        abort ();
      for (size_t k = 0; k < s[i]->n_parent_paths; k++)
        if (!s[i]->parent_paths[k]) abort ();
      if (n_ids < 2)
        memcpy (ids[n_ids++], s[i]->snapshot_id, VHDKIT_GUID_STR);
      if (!rct[0])
        memcpy (rct, s[i]->rct_id, VHDKIT_RCT_ID_MAX);
    }
    if (pristine && (n != 2 || strcmp (s[0]->snapshot_id, tids[0]) ||
                     strcmp (s[1]->snapshot_id, tids[1]) ||
                     s[0]->n_parent_paths != 0 || s[1]->n_parent_paths != 1))
      abort ();
    vhdkit_snapshots_free (s, n);
  }
  else if (pristine)
    die ("set_get_snapshots");

  /* By ID: one the input may still hold, one it may not. */
  const char *want[2] = { tids[1], n_ids ? ids[0] : tids[0] };
  s = NULL; n = 0;
  if (vhdkit_set_get_snapshots (setp, want, 2, false, &s, &n) == 0) {
    if (n != 2) abort ();
    vhdkit_snapshots_free (s, n);
  }
  else if (pristine)
    die ("set_get_snapshots by ID");

  if (n_ids < 2)                        /* the template's, known or not */
    memcpy (ids[n_ids++], tids[0], VHDKIT_GUID_STR);
  memcpy (ids[n_ids++], "00000000-0000-0000-0000-000000000000", VHDKIT_GUID_STR);

  struct vhdkit_disk *d = vhdkit_disk_open (setp, VHDKIT_OPEN_RDONLY);
  say ("disk_open set", d ? 0 : -1);
  if (d) {
    uint64_t size = 0;
    reads (d, pristine ? 2 : -1);
    if (vhdkit_disk_get_size (d, &size, NULL) == 0 && size <= (64u << 20)) {
      uint64_t cover[3] = { 0, 0, 0 };
      r = changes (d, tids[0], NULL, size, cover);
      say ("changes since template snapshot 1", r);
      if (pristine && (r == -1 || cover[0] != 4096 || cover[1] != 4096 || cover[2] != 8192)) {
        fprintf (stderr, "fuzz-vhds: template changes since snapshot 1: %d %s\n", r,
                 r == -1 ? vhdkit_get_error () : "misses a write");
        abort ();
      }
      for (size_t i = 0; i < n_ids; i++)
        changes (d, ids[i], NULL, size, NULL);
      if (n_ids >= 2)
        changes (d, ids[0], ids[1], size, NULL);
      if (rct[0])                       /* a record's RCT ID as LimitId */
        changes (d, rct, NULL, size, NULL);
    }
    vhdkit_disk_close (d);
  }
  else if (pristine)
    die ("disk_open set");

  snprintf (p, sizeof p, "%s@not-a-guid", setp);
  d = vhdkit_disk_open (p, VHDKIT_OPEN_RDONLY);
  if (d) abort ();
  for (size_t i = 0; i < n_ids; i++) {
    snprintf (p, sizeof p, "%s@%s", setp, ids[i]);
    d = vhdkit_disk_open (p, VHDKIT_OPEN_RDONLY);
    say (p, d ? 0 : -1);
    if (d) {
      uint64_t size = 0;
      reads (d, pristine && !strcmp (ids[i], tids[0]) ? 0 : -1);
      if (i > 0 && vhdkit_disk_get_size (d, &size, NULL) == 0 && size <= (64u << 20))
        changes (d, ids[0], NULL, size, NULL);
      vhdkit_disk_close (d);
    }
    else if (pristine && !strcmp (ids[i], tids[0]))
      die ("disk_open snapshot");
  }
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  size_t n;
  struct stat st;

  if (!tset) make_template ();
  uint8_t *b = build (data, size, &n);
  bool pristine = n == tset_size && memcmp (b, tset, n) == 0;
  put (setp, b, n);
  free (b);
  if (lstat (setp, &st) == -1) abort ();
  exercise (pristine);
  check_unchanged (&st);
  return 0;
}
