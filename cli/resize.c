/* vhdkit resize: change the virtual size of an image.  Growing adds
 * zeros; the library refuses a shrink that would drop data.  Through
 * vhdkitd it is ResizeVirtualHardDisk.
 */
#include <inttypes.h>

#include "vhdkit.h"
#include "cli.h"
#include "remote.h"

static int
run_remote (const char *path, uint64_t size)
{
  json_t *p = remote_path (path), *out;

  if (p == NULL)
    return CLI_EXIT_FAILURE;
  if (remote_run (REMOTE_IMS, "ResizeVirtualHardDisk",
                  json_pack ("{s:o, s:I}", "Path", p, "MaxInternalSize",
                             (json_int_t) size), 0, &out) != CLI_EXIT_OK)
    return CLI_EXIT_FAILURE;
  json_decref (out);
  return CLI_EXIT_OK;
}

static int
run (int argc, char **argv)
{
  struct vhdkit_disk *d;
  uint64_t size = 0;
  char **ops;
  int r;
  struct cli_opt opts[] = {
    CLI_ARG ("size", CLI_OPT_U64, &size, "SIZE",
             "the new virtual size, e.g. 20G"),
    CLI_END,
  };

  r = cli_parse_args (&cli_verb_resize, opts, argc, argv, &ops);
  if (r != CLI_CONTINUE)
    return r;
  if (!cli_given (opts, "size"))
    return cli_usage ("--size is required");
  if (size > INT64_MAX)         /* JSON numbers of the door are signed */
    return cli_error (VHDKIT_RC_INVALID_PARAMETER, "%s: --size %" PRIu64
                      " is too large", ops[0], size);
  if (remote_socket ())
    return run_remote (ops[0], size);

  d = vhdkit_disk_open (ops[0], VHDKIT_OPEN_RDWR);
  if (d == NULL)
    return cli_lib_error ();
  r = vhdkit_disk_resize (d, size) == -1 ? cli_lib_error () : CLI_EXIT_OK;
  if (vhdkit_disk_close (d) == -1 && r == CLI_EXIT_OK)
    r = cli_lib_error ();
  return r;
}

const struct cli_verb cli_verb_resize = {
  "resize", "PATH", 1, "--size SIZE", "Change the virtual size of an image",
  run,
};
