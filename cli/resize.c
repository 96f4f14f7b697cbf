/* vhdkit resize: change the virtual size of an image.  Growing adds
 * zeros; the library refuses a shrink that would drop data.
 */
#include "vhdkit.h"
#include "cli.h"

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
