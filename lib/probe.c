/* Format probing: VHDX by its file identifier, VHD (version 1) by its
 * "conectix" footer or header copy, raw by elimination.  A .vhdx/.avhdx
 * path without the VHDX signature is reported as corrupt rather than
 * silently treated as raw. */
#include <errno.h>
#include <string.h>
#include <strings.h>
#include <fcntl.h>

#include "internal.h"

bool
path_has_vhdx_ext (const char *path)
{
  const char *dot = strrchr (path, '.');
  return dot && (strcasecmp (dot, ".vhdx") == 0 || strcasecmp (dot, ".avhdx") == 0);
}

static bool
path_has_vhd_ext (const char *path)
{
  const char *dot = strrchr (path, '.');
  return dot && (strcasecmp (dot, ".vhd") == 0 || strcasecmp (dot, ".avhd") == 0);
}

int
probe_io (struct io *io, const char *path)
{
  char sig[8];
  uint64_t size;
  if (io_get_size (io, &size) == -1) {
    set_error_errno (errno, "%s: stat", path);
    return VHDKIT_FORMAT_UNKNOWN;
  }
  ssize_t r = io_pread (io, sig, sizeof sig, 0);
  if (r < 0) {
    set_error_errno (errno, "%s: read", path);
    return VHDKIT_FORMAT_UNKNOWN;
  }
  if (r == 8 && memcmp (sig, "vhdxfile", 8) == 0)
    return VHDKIT_FORMAT_VHDX;
  if (r == 8 && memcmp (sig, "conectix", 8) == 0)
    return VHDKIT_FORMAT_VHD;
  if (r == 8 && memcmp (sig, "VHDKSET1", 8) == 0)
    return VHDKIT_FORMAT_VHDSET;          /* docs/FORMAT-vhds.md */
  if (size >= 512) {
    if (io_pread (io, sig, sizeof sig, size - 512) == 8 &&
        memcmp (sig, "conectix", 8) == 0)
      return VHDKIT_FORMAT_VHD;
    /* Old VHD writers used a 511-byte footer. */
    if (io_pread (io, sig, sizeof sig, size - 511) == 8 &&
        memcmp (sig, "conectix", 8) == 0)
      return VHDKIT_FORMAT_VHD;
  }
  if (path_has_vhdx_ext (path)) {
    set_error (VHDKIT_RC_FAILED, 0,
               "%s: not a VHDX image (the file identifier signature \"vhdxfile\" is missing%s)",
               path, size < 8 ? "; the file is truncated" : "");
    return VHDKIT_FORMAT_UNKNOWN;
  }
  if (path_has_vhd_ext (path)) {
    set_error (VHDKIT_RC_FAILED, 0,
               "%s: not a VHD image (no \"conectix\" footer)", path);
    return VHDKIT_FORMAT_UNKNOWN;
  }
  return VHDKIT_FORMAT_RAW;
}

int
vhdkit_probe_format (const char *path)
{
  clear_error ();
  struct io *io = io_open (path, O_RDONLY, 0);
  if (!io) {
    set_error_errno (errno, "%s: cannot open", path);
    return VHDKIT_FORMAT_UNKNOWN;
  }
  int f = probe_io (io, path);
  io_close (io);
  return f;
}
