/* libFuzzer target for the change-tracking files: a template raw image
 * with tracking enabled, written, checkpointed, and left as after a
 * crash (write-ahead bits set); the input is a list of patches
 * [u8 file: even = .rct, odd = .mrt][u32 offset][u8 length][bytes]
 * applied to its tracking files.  Then: open read-only (queries for
 * every issued ID over the whole disk with small caps, status, the
 * queries again) and open read-write (a write, a checkpoint, the same).
 * Anything but a clean error or a correct-looking answer is a bug; in
 * particular an answer for an ID of the template's epoch must still
 * cover the blocks the template wrote after it (no false negative),
 * unless the call failed. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "vhdkit.h"

static char dir[64], img[96], rct[100], mrt[100];
static uint8_t *trct, *tmrt;
static size_t trct_size, tmrt_size;
static char ids[2][VHDKIT_RCT_ID_MAX];

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

static void
cleanup (void)
{
  unlink (img); unlink (rct); unlink (mrt);
  rmdir (dir);
}

static void
make_template (void)
{
  snprintf (dir, sizeof dir, "/dev/shm/vhdkit-fuzz-rct-%d", (int) getpid ());
  mkdir (dir, 0700);
  atexit (cleanup);
  snprintf (img, sizeof img, "%s/disk.raw", dir);
  snprintf (rct, sizeof rct, "%s.rct", img);
  snprintf (mrt, sizeof mrt, "%s.mrt", img);
  unlink (img); unlink (rct); unlink (mrt);
  struct vhdkit_create_params p = { .struct_size = sizeof (struct vhdkit_create_params), .format = VHDKIT_FORMAT_RAW, .size = 8 << 20 };
  if (vhdkit_disk_create (img, &p) == -1) abort ();
  struct vhdkit_disk *d = vhdkit_disk_open (img, VHDKIT_OPEN_RDWR);
  static uint8_t buf[65536];
  memset (buf, 0x5a, sizeof buf);
  if (!d || vhdkit_rct_enable (d, 4096) == -1 ||
      vhdkit_disk_pwrite (d, buf, 4096, 0, 0) == -1 ||
      vhdkit_rct_checkpoint (d, ids[0]) == -1 ||
      vhdkit_disk_pwrite (d, buf, sizeof buf, 1 << 20, 0) == -1 ||
      vhdkit_rct_checkpoint (d, ids[1]) == -1 ||
      vhdkit_disk_pwrite (d, buf, 4096, 5 << 20, 0) == -1 ||
      vhdkit_disk_zero (d, 8192, 6 << 20, 0) == -1)
    abort ();
  /* Copy the tracking files now: the write-ahead bits are set and the
   * session is dirty, as after a crash. */
  trct = slurp (rct, &trct_size);
  tmrt = slurp (mrt, &tmrt_size);
  vhdkit_disk_close (d);
}

/* Write the template file sparsely: only its non-zero 4 KiB pages (the
 * tracking file is mostly holes). */
static void
put (const char *p, const uint8_t *b, size_t n)
{
  static const uint8_t zero[4096];
  int fd = open (p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd == -1 || ftruncate (fd, (off_t) n) == -1) abort ();
  for (size_t o = 0; o < n; o += 4096) {
    size_t len = n - o < 4096 ? n - o : 4096;
    if (memcmp (b + o, zero, len) != 0 && pwrite (fd, b + o, len, (off_t) o) != (ssize_t) len)
      abort ();
  }
  close (fd);
}

/* Offsets in the tracking file worth hitting: the header copies, the
 * first summary page, the leaf pages the template wrote, just past the
 * end.  Patch offsets pick one of them and a spot inside. */
static uint64_t targets[6];

static void
find_targets (void)
{
  static const uint8_t zero[4096];
  targets[0] = 0;
  targets[1] = 4096;
  targets[2] = 64 * 1024;
  targets[3] = targets[4] = trct_size;
  for (size_t o = 1 << 20; o < trct_size; o += 4096)
    if (memcmp (trct + o, zero, 4096) != 0) { targets[3] = o; targets[4] = o + 4096; break; }
  targets[5] = trct_size;
}

static void
patch (const char *p, size_t size, uint32_t off, const uint8_t *b, size_t n)
{
  int fd = open (p, O_WRONLY);
  if (fd == -1) abort ();
  if (p == rct) {
    if (!targets[1]) find_targets ();
    off = (uint32_t) (targets[(off >> 16) % 6] + (off & 0x1fff));
  }
  else
    off %= (uint32_t) size + 8192;
  if (pwrite (fd, b, n, off) != (ssize_t) n) abort ();
  close (fd);
}

/* Ranges the template changed after each ID: every complete answer must
 * cover them (INV-1), whatever was done to the tracking files. */
static const uint64_t must[2][3][2] = {
  { { 1 << 20, 65536 }, { 5 << 20, 4096 }, { 6 << 20, 8192 } },
  { { 5 << 20, 4096 }, { 6 << 20, 8192 }, { 0, 0 } },
};

static void
query_ids (struct vhdkit_disk *d)
{
  for (int i = 0; i < 2; i++) {
    uint64_t off = 0, size = 8 << 20;
    int rounds = 0;
    uint64_t covered[3] = { 0, 0, 0 };
    while (off < size && rounds++ < 4096) {
      struct vhdkit_changes c = VHDKIT_CHANGES_INIT;
      if (vhdkit_disk_get_changes (d, ids[i], NULL, off, size - off, 3, &c) == -1)
        break;
      if (c.processed == 0 || c.processed > size - off) abort ();   /* §3.5 */
      for (size_t k = 0; k < c.count; k++) {
        if (c.offsets[k] < off || c.offsets[k] + c.lengths[k] > off + c.processed ||
            (k && c.offsets[k] <= c.offsets[k - 1] + c.lengths[k - 1]))
          abort ();                                                 /* §3.4 */
        for (int m = 0; m < 3; m++) {
          uint64_t a = must[i][m][0], b = a + must[i][m][1];
          uint64_t lo = c.offsets[k] > a ? c.offsets[k] : a;
          uint64_t hi = c.offsets[k] + c.lengths[k] < b ? c.offsets[k] + c.lengths[k] : b;
          if (lo < hi) covered[m] += hi - lo;
        }
      }
      off += c.processed;
      vhdkit_changes_free (&c);
    }
    if (off >= size)
      for (int m = 0; m < 3; m++)
        if (covered[m] != must[i][m][1]) abort ();                  /* INV-1 */
  }
}

/* The queries before and after the status: a read-only view reads only
 * the pages each query needs until its status (or a query that had to
 * rebuild a summary page) makes it read them all. */
static void
query_all (struct vhdkit_disk *d)
{
  struct vhdkit_rct_status st = VHDKIT_RCT_STATUS_INIT;
  query_ids (d);
  vhdkit_rct_status (d, &st);
  query_ids (d);
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  if (!trct) make_template ();
  put (rct, trct, trct_size);
  put (mrt, tmrt, tmrt_size);
  size_t i = 0;
  while (i + 6 <= size) {
    int which = data[i] & 1;
    uint32_t off;
    memcpy (&off, data + i + 1, 4);
    size_t len = data[i + 5];
    i += 6;
    if (len > size - i) len = size - i;
    if (which) patch (mrt, tmrt_size, off, data + i, len);
    else patch (rct, trct_size, off, data + i, len);   /* p == rct picks targets */
    i += len;
  }
  struct vhdkit_disk *d = vhdkit_disk_open (img, VHDKIT_OPEN_RDONLY);
  if (d) { query_all (d); vhdkit_disk_close (d); }
  d = vhdkit_disk_open (img, VHDKIT_OPEN_RDWR);
  if (d) {
    static uint8_t buf[4096];
    char id[VHDKIT_RCT_ID_MAX];
    vhdkit_disk_pwrite (d, buf, sizeof buf, 3 << 20, 0);
    vhdkit_rct_checkpoint (d, id);
    query_all (d);
    vhdkit_disk_close (d);
  }
  return 0;
}
