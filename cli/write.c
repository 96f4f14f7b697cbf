/* vhdkit write: write stdin into the virtual disk at --offset, or zero
 * or discard a range.  Data moves in chunks of up to CLI_CHUNK, aligned
 * to CLI_CHUNK on the disk.
 *
 * Without --length the amount of data is known only at end of input, so
 * a tail that is not a whole number of sectors is refused after the
 * chunks before it have been written.  With --length the check comes
 * first.  Closing the disk flushes; its result decides the exit status.
 * With --connect it is refused: vhdkitd has no method for a disk's data
 * yet.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vhdkit.h"
#include "cli.h"
#include "remote.h"

/* Read up to N bytes, fewer only at end of input; -1 on error. */
static ssize_t
read_full (int fd, char *buf, size_t n)
{
  size_t got = 0;

  while (got < n) {
    ssize_t r = read (fd, buf + got, n - got);

    if (r == 0)
      break;
    if (r == -1 && errno == EINTR)
      continue;
    if (r == -1)
      return -1;
    got += (size_t) r;
  }
  return (ssize_t) got;
}

static int
not_whole_sectors (const char *path, const char *what, uint64_t n,
                   uint32_t sector)
{
  return cli_error (VHDKIT_RC_INVALID_PARAMETER,
                    "%s: %s %" PRIu64 " is not a multiple of the logical "
                    "sector size %" PRIu32, path, what, n, sector);
}

/* Copy stdin to D at OFFSET: LENGTH bytes, or all of it if !LIMITED. */
static int
copy_in (struct vhdkit_disk *d, const char *path, uint64_t offset,
         uint64_t length, bool limited, uint32_t sector)
{
  char *buf = aligned_alloc (4096, CLI_CHUNK);
  uint64_t done = 0;
  int r = CLI_EXIT_OK;

  if (buf == NULL)
    return cli_error (VHDKIT_RC_OUT_OF_MEMORY, "out of memory");
  while (!limited || done < length) {
    size_t want = cli_chunk_len (offset + done,
                                 limited ? length - done : UINT64_MAX);
    ssize_t got = read_full (STDIN_FILENO, buf, want);

    if (got == -1) {
      r = cli_error (VHDKIT_RC_FAILED, "%s: reading standard input: %s",
                     path, strerror (errno));
      break;
    }
    if (got % sector != 0) {
      r = not_whole_sectors (path, "data length", done + (uint64_t) got,
                             sector);
      break;
    }
    if (got > 0 && vhdkit_disk_pwrite (d, buf, (size_t) got,
                                       offset + done, 0) == -1) {
      r = cli_lib_error ();
      break;
    }
    done += (uint64_t) got;
    if ((size_t) got < want)
      break;                    /* end of input */
  }
  if (r == CLI_EXIT_OK && limited && done < length)
    r = cli_error (VHDKIT_RC_INVALID_PARAMETER,
                   "%s: standard input ended after %" PRIu64 " of the %"
                   PRIu64 " bytes of --length", path, done, length);
  free (buf);
  return r;
}

static int
run (int argc, char **argv)
{
  struct vhdkit_disk_info info = VHDKIT_DISK_INFO_INIT;
  struct vhdkit_disk *d;
  uint64_t offset = 0, length = 0;
  int zero = 0, discard = 0, flush = 0, r;
  bool limited;
  char **ops;
  struct cli_opt opts[] = {
    CLI_ARG ("offset", CLI_OPT_U64, &offset, "N", "where to write (required)"),
    CLI_ARG ("length", CLI_OPT_U64, &length, "N",
             "how many bytes (default: all of standard input)"),
    CLI_FLAG ("zero", &zero, 1,
              "make the range read as zeros instead (needs --length)"),
    CLI_FLAG ("discard", &discard, 1,
              "discard (unmap) the range instead (needs --length)"),
    CLI_FLAG ("flush", &flush, 1, "also flush explicitly before closing"),
    CLI_END,
  };

  r = cli_parse_args (&cli_verb_write, opts, argc, argv, &ops);
  if (r != CLI_CONTINUE)
    return r;
  if (remote_socket ())
    return remote_unsupported ("write", "the service has no method that moves "
                               "a disk's data yet; run it without --connect "
                               "once vhdkitd has closed the image");
  limited = cli_given (opts, "length");
  if (!cli_given (opts, "offset"))
    return cli_usage ("--offset is required");
  if (zero && discard)
    return cli_usage ("--zero and --discard cannot be used together");
  if ((zero || discard) && !limited)
    return cli_usage ("--%s needs --length", zero ? "zero" : "discard");

  d = vhdkit_disk_open (ops[0], VHDKIT_OPEN_RDWR);
  if (d == NULL)
    return cli_lib_error ();
  if (vhdkit_disk_get_size (d, &info.virtual_size, &info.logical_sector_size) == -1)
    r = cli_lib_error ();
  else if (offset % info.logical_sector_size != 0)
    r = not_whole_sectors (ops[0], "offset", offset, info.logical_sector_size);
  else if (limited && length % info.logical_sector_size != 0)
    r = not_whole_sectors (ops[0], "length", length, info.logical_sector_size);
  else if (zero)
    r = vhdkit_disk_zero (d, length, offset, 0) == -1 ? cli_lib_error () : 0;
  else if (discard)
    r = vhdkit_disk_discard (d, length, offset, 0) == -1 ? cli_lib_error () : 0;
  else
    r = copy_in (d, ops[0], offset, length, limited,
                 info.logical_sector_size);
  if (r == CLI_EXIT_OK && flush && vhdkit_disk_flush (d) == -1)
    r = cli_lib_error ();
  if (vhdkit_disk_close (d) == -1 && r == CLI_EXIT_OK)
    r = cli_lib_error ();
  return r;
}

const struct cli_verb cli_verb_write = {
  "write", "PATH", 1, "--offset N [--length N] [--zero|--discard] [--flush]",
  "Write standard input (or zeros) to a range of the virtual disk", run,
};
