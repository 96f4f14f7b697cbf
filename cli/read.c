/* vhdkit read: copy a range of the virtual disk to stdout, in chunks of
 * up to CLI_CHUNK aligned to CLI_CHUNK.  Output stops at the end of the
 * disk (--length is a maximum, as for head -c), so that one command can
 * view a disk before and after a resize.  If stdout goes away (EPIPE)
 * the command stops quietly with exit status 1.  With --connect it is
 * refused: vhdkitd has no method for a disk's data yet.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <unistd.h>

#include "vhdkit.h"
#include "cli.h"
#include "remote.h"

static int
write_all (int fd, const char *buf, size_t n)
{
  while (n > 0) {
    ssize_t r = write (fd, buf, n);

    if (r == -1 && errno == EINTR)
      continue;
    if (r == -1)
      return -1;
    buf += r;
    n -= (size_t) r;
  }
  return 0;
}

static int
copy_out (struct vhdkit_disk *d, uint64_t offset, uint64_t length)
{
  char *buf = aligned_alloc (4096, CLI_CHUNK);
  int r = CLI_EXIT_OK;

  if (buf == NULL)
    return cli_error (VHDKIT_RC_OUT_OF_MEMORY, "out of memory");
  while (length > 0) {
    size_t n = cli_chunk_len (offset, length);

    if (vhdkit_disk_pread (d, buf, n, offset, 0) == -1) {
      r = cli_lib_error ();
      break;
    }
    if (write_all (STDOUT_FILENO, buf, n) == -1) {
      r = cli_stdout_error ();
      break;
    }
    offset += n;
    length -= n;
  }
  free (buf);
  return r;
}

static int
run (int argc, char **argv)
{
  struct vhdkit_disk_info info = VHDKIT_DISK_INFO_INIT;
  struct vhdkit_disk *d;
  uint64_t offset = 0, length = 0;
  char **ops;
  int r;
  struct cli_opt opts[] = {
    CLI_ARG ("offset", CLI_OPT_U64, &offset, "N", "where to start (default 0)"),
    CLI_ARG ("length", CLI_OPT_U64, &length, "N",
             "at most N bytes (default: to the end of the disk)"),
    CLI_END,
  };

  r = cli_parse_args (&cli_verb_read, opts, argc, argv, &ops);
  if (r != CLI_CONTINUE)
    return r;
  if (remote_socket ())
    return remote_unsupported ("read", "the service has no method that moves "
                               "a disk's data yet; run it without --connect "
                               "once vhdkitd has closed the image");

  d = vhdkit_disk_open (ops[0], VHDKIT_OPEN_RDONLY);
  if (d == NULL)
    return cli_lib_error ();
  if (vhdkit_disk_get_size (d, &info.virtual_size, &info.logical_sector_size) == -1)
    r = cli_lib_error ();
  else if (offset > info.virtual_size)
    r = cli_error (VHDKIT_RC_INVALID_PARAMETER,
                   "%s: offset %" PRIu64 " is beyond the end of the disk "
                   "(%" PRIu64 " bytes)", ops[0], offset, info.virtual_size);
  else {
    uint64_t rest = info.virtual_size - offset;

    r = copy_out (d, offset,
                  cli_given (opts, "length") && length < rest ? length : rest);
  }
  if (vhdkit_disk_close (d) == -1 && r == CLI_EXIT_OK)
    r = cli_lib_error ();
  return r;
}

const struct cli_verb cli_verb_read = {
  "read", "PATH", 1, "[--offset N] [--length N]",
  "Copy a range of the virtual disk to standard output", run,
};
