/* io_open and the backend it uses; helpers over any backend.
 *
 * The backend pointer is set by test programs before they open anything
 * (io_set_backend) and only read afterwards; it is atomic so that a late
 * setter is at least not a data race. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io.h"

static _Atomic (const struct io_backend *) backend;

void
io_set_backend (const struct io_backend *b)
{
  atomic_store (&backend, b);
}

struct io *
io_open (const char *path, int flags, mode_t mode)
{
  const struct io_backend *b = atomic_load_explicit (&backend, memory_order_acquire);
  return (b ? b : &io_posix_backend)->open (path, flags, mode);
}

int
io_get_size (struct io *io, uint64_t *size)
{
  struct io_stat st;
  if (io_stat (io, &st) == -1)
    return -1;
  *size = st.size;
  return 0;
}

int
io_pread_full (struct io *io, void *buf, size_t n, uint64_t off)
{
  ssize_t r = io_pread (io, buf, n, off);
  if (r < 0)
    return -1;
  if ((size_t) r != n) {
    errno = ENODATA;
    return -1;
  }
  return 0;
}

int
io_sync_parent_dir (const char *path)
{
  char *c = strdup (path);
  if (!c) return -1;
  int fd = open (dirname (c), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  free (c);
  if (fd == -1) return -1;
  int r = fsync (fd);
  int e = errno;
  close (fd);
  errno = e;
  return r;
}
