/* libFuzzer target for the VHDX parser: open arbitrary bytes as an image,
 * then exercise every read-only path (info, extent map, reads across the
 * disk, check).  Anything but a clean error is a bug.
 *
 * Two input forms:
 *  - bytes starting "vhdxfile" (or any other file) are the image itself;
 *  - anything else is a list of patches applied to a valid template image
 *    made at start-up (a differencing-free dynamic image with data and a
 *    log that must be replayed): records of [u32 offset][u8 length][bytes].
 *    This lets mutations reach headers, region tables, metadata, the log
 *    and the BAT, which lie megabytes apart in a real file.
 *
 * Built with clang -fsanitize=fuzzer by `make fuzz`, and with
 * replay-main.c into a plain program that `make test` runs over the seeds
 * and past crashers. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vhdkit.h"

static char path[64];
static uint8_t *tmpl;          /* the template image */
static size_t tmpl_size;
static size_t *pages;          /* offsets of its non-zero 4 KiB pages */
static size_t npages;

static int
count_extent (void *opaque, uint64_t off, uint64_t len, unsigned flags)
{
  (*(uint64_t *) opaque)++;
  return *(uint64_t *) opaque > 100000;   /* stop on absurd maps */
}

static void
ignore (void *opaque, const char *problem)
{
}

static void
make_template (void)
{
  char tp[80];
  snprintf (tp, sizeof tp, "/dev/shm/vhdkit-fuzz-tmpl-%d.vhdx", (int) getpid ());
  unlink (tp);
  struct vhdkit_create_params p = { .struct_size = sizeof (struct vhdkit_create_params), .size = 3 << 20, .block_size = 1 << 20 };
  if (vhdkit_disk_create (tp, &p) == -1) abort ();
  struct vhdkit_disk *d = vhdkit_disk_open (tp, VHDKIT_OPEN_RDWR);
  if (!d) abort ();
  static uint8_t buf[1 << 16];
  memset (buf, 0xa5, sizeof buf);
  if (vhdkit_disk_pwrite (d, buf, sizeof buf, 4096, 0) == -1 ||
      vhdkit_disk_pwrite (d, buf, sizeof buf, (2 << 20) - 512, 0) == -1 ||
      vhdkit_disk_flush (d) == -1)
    abort ();
  /* Copy the file now: the log still holds the last commit. */
  int fd = open (tp, O_RDONLY);
  off_t n = lseek (fd, 0, SEEK_END);
  tmpl = malloc ((size_t) n);
  if (!tmpl || pread (fd, tmpl, (size_t) n, 0) != n) abort ();
  tmpl_size = (size_t) n;
  close (fd);
  static const uint8_t zero[4096];
  pages = malloc ((tmpl_size / 4096 + 1) * sizeof *pages);
  if (!pages) abort ();
  for (size_t o = 0; o < tmpl_size; o += 4096) {
    size_t len = tmpl_size - o < 4096 ? tmpl_size - o : 4096;
    if (memcmp (tmpl + o, zero, len) != 0) pages[npages++] = o;
  }
  vhdkit_disk_close (d);
  unlink (tp);
}

static void
write_input (const uint8_t *data, size_t size)
{
  int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd == -1) abort ();
  if (size >= 8 && memcmp (data, "vhdxfile", 8) == 0) {
    if (write (fd, data, size) != (ssize_t) size) abort ();
    close (fd);
    return;
  }
  if (!tmpl) make_template ();
  /* Write the template's non-zero 4 KiB pages, then the patches. */
  if (ftruncate (fd, (off_t) tmpl_size) == -1) abort ();
  for (size_t i = 0; i < npages; i++) {
    size_t o = pages[i], n = tmpl_size - o < 4096 ? tmpl_size - o : 4096;
    if (pwrite (fd, tmpl + o, n, (off_t) o) != (ssize_t) n) abort ();
  }
  size_t i = 0;
  while (i + 5 <= size) {
    uint32_t off;
    memcpy (&off, data + i, 4);
    size_t len = data[i + 4];
    i += 5;
    if (len > size - i) len = size - i;
    off %= (uint32_t) tmpl_size + 65536;      /* a little past the end too */
    if (pwrite (fd, data + i, len, off) != (ssize_t) len) abort ();
    i += len;
  }
  close (fd);
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  if (!path[0])
    snprintf (path, sizeof path, "/dev/shm/vhdkit-fuzz-%d.vhdx", (int) getpid ());
  write_input (data, size);

  struct vhdkit_disk *d = vhdkit_disk_open (path, VHDKIT_OPEN_RDONLY);
  if (d) {
    struct vhdkit_disk_info info = VHDKIT_DISK_INFO_INIT;
    vhdkit_disk_get_info (d, &info);
    uint64_t n = 0, sz = info.virtual_size;
    uint64_t span = sz < (64u << 20) ? sz : (64u << 20);
    vhdkit_disk_map (d, 0, span, count_extent, &n);
    static uint8_t buf[1 << 20];
    uint32_t lss = info.logical_sector_size;
    vhdkit_disk_pread (d, buf, span < sizeof buf ? span : sizeof buf, 0, 0);
    if (sz > 2 * lss) {
      vhdkit_disk_pread (d, buf, lss, sz / 2 / lss * lss, 0);
      vhdkit_disk_pread (d, buf, lss, sz - lss, 0);
    }
    vhdkit_disk_close (d);
  }
  vhdkit_check (path, ignore, NULL);
  unlink (path);
  return 0;
}
