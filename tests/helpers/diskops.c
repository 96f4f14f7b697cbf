/* diskops — run a script of operations on ONE disk handle, for shell
 * tests that inject faults from outside (strace -e inject=..., the io
 * simulator) and then keep working on the same handle.
 *
 *   diskops [--ro] IMAGE OP [ARG...] [, OP [ARG...]]...
 *
 * Operations (offsets and lengths in bytes, with K/M/G suffixes):
 *   write OFF LEN BYTE    LEN bytes of value BYTE (0..255) at OFF
 *   zero OFF LEN          vhdkit_disk_zero
 *   discard OFF LEN       vhdkit_disk_discard
 *   read OFF LEN          prints the first byte read
 *   flush
 *   checkpoint            prints the new RCT ID
 *   changes ID            prints "OFF LEN" per changed range
 *   close                 vhdkit_disk_close (the handle is gone after)
 *   exit                  _exit(0) at once: no flush, no close
 *   sleep SECONDS
 * Each operation prints one line "OP ok [result]" or "OP fail RC: message"
 * on stdout and the script goes on.  Exit status: 0 when the script ran
 * (whatever the operations returned), 2 for a usage error, 1 if the
 * image could not be opened.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vhdkit.h"

static void
usage (void)
{
  fprintf (stderr, "usage: diskops [--ro] IMAGE OP [ARG...] [, OP [ARG...]]...\n");
  exit (2);
}

static uint64_t
num (const char *s)
{
  char *end;
  errno = 0;
  uint64_t v = strtoull (s, &end, 0);
  if (errno || end == s) usage ();
  switch (*end) {
  case 'K': v <<= 10; end++; break;
  case 'M': v <<= 20; end++; break;
  case 'G': v <<= 30; end++; break;
  default: break;
  }
  if (*end) usage ();
  return v;
}

static void
result (const char *op, int r, const char *extra)
{
  if (r == 0)
    printf ("%s ok%s%s\n", op, extra && *extra ? " " : "", extra ? extra : "");
  else
    printf ("%s fail %" PRIu32 ": %s\n", op, vhdkit_get_error_code (), vhdkit_get_error ());
  fflush (stdout);
}

int
main (int argc, char **argv)
{
  unsigned flags = VHDKIT_OPEN_RDWR;
  int i = 1;
  if (i < argc && strcmp (argv[i], "--ro") == 0) { flags = VHDKIT_OPEN_RDONLY; i++; }
  if (i >= argc) usage ();
  const char *path = argv[i++];
  struct vhdkit_disk *d = vhdkit_disk_open (path, flags);
  if (!d) {
    printf ("open fail %" PRIu32 ": %s\n", vhdkit_get_error_code (), vhdkit_get_error ());
    return 1;
  }
  while (i < argc) {
    const char *op = argv[i];
    int n = 0;                  /* arguments of this op */
    while (i + 1 + n < argc && strcmp (argv[i + 1 + n], ",") != 0) n++;
    char **a = argv + i + 1;
    char extra[128] = "";
    int r = 0;
    if (!d && strcmp (op, "exit") != 0 && strcmp (op, "sleep") != 0) {
      fprintf (stderr, "diskops: %s after close\n", op);
      return 2;
    }
    if (strcmp (op, "write") == 0 && n == 3) {
      uint64_t off = num (a[0]), len = num (a[1]), b = num (a[2]);
      uint8_t *buf = malloc (len ? len : 1);
      if (!buf || b > 255) usage ();
      memset (buf, (int) b, len);
      r = vhdkit_disk_pwrite (d, buf, len, off, 0);
      free (buf);
    }
    else if ((strcmp (op, "zero") == 0 || strcmp (op, "discard") == 0) && n == 2) {
      uint64_t off = num (a[0]), len = num (a[1]);
      r = op[0] == 'z' ? vhdkit_disk_zero (d, len, off, 0) : vhdkit_disk_discard (d, len, off, 0);
    }
    else if (strcmp (op, "read") == 0 && n == 2) {
      uint64_t off = num (a[0]), len = num (a[1]);
      uint8_t *buf = malloc (len ? len : 1);
      if (!buf) usage ();
      r = vhdkit_disk_pread (d, buf, len, off, 0);
      if (r == 0 && len) snprintf (extra, sizeof extra, "%u", buf[0]);
      free (buf);
    }
    else if (strcmp (op, "flush") == 0 && n == 0)
      r = vhdkit_disk_flush (d);
    else if (strcmp (op, "checkpoint") == 0 && n == 0) {
      char id[VHDKIT_RCT_ID_MAX];
      r = vhdkit_rct_checkpoint (d, id);
      if (r == 0) snprintf (extra, sizeof extra, "%s", id);
    }
    else if (strcmp (op, "changes") == 0 && n == 1) {
      uint64_t size;
      struct vhdkit_changes c = VHDKIT_CHANGES_INIT;
      vhdkit_disk_get_size (d, &size, NULL);
      r = vhdkit_disk_get_changes (d, a[0], NULL, 0, size, 0, &c);
      if (r == 0) {
        snprintf (extra, sizeof extra, "%zu ranges", c.count);
        result (op, 0, extra);
        for (size_t k = 0; k < c.count; k++)
          printf ("%" PRIu64 " %" PRIu64 "\n", c.offsets[k], c.lengths[k]);
        vhdkit_changes_free (&c);
        i += 1 + n + (i + 1 + n < argc);
        continue;
      }
    }
    else if (strcmp (op, "close") == 0 && n == 0) {
      r = vhdkit_disk_close (d);
      d = NULL;
    }
    else if (strcmp (op, "exit") == 0 && n == 0) {
      fflush (stdout);
      _exit (0);
    }
    else if (strcmp (op, "sleep") == 0 && n == 1) {
      sleep ((unsigned) num (a[0]));
    }
    else {
      fprintf (stderr, "diskops: unknown operation or wrong arguments: %s\n", op);
      return 2;
    }
    result (op, r, extra);
    i += 1 + n + (i + 1 + n < argc);    /* the op, its arguments, the "," */
  }
  if (d) result ("close", vhdkit_disk_close (d), NULL);
  return 0;
}
