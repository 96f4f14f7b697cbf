/* vhdkit create: make a new image (fixed, dynamic or differencing VHDX,
 * or raw) from command-line options.  The library checks the values; this
 * file only catches the combinations that make no sense as a command.
 * Through vhdkitd it is CreateVirtualHardDisk (VHDX only).
 */
#include "vhdkit.h"
#include "cli.h"
#include "remote.h"

static int
run_remote (const char *path, const struct vhdkit_create_params *p,
            int progress)
{
  json_t *sd = remote_setting_data (path, p), *out;

  if (sd == NULL)
    return CLI_EXIT_FAILURE;
  if (remote_run (REMOTE_IMS, "CreateVirtualHardDisk",
                  json_pack ("{s:o}", "VirtualDiskSettingData", sd),
                  progress, &out) != CLI_EXIT_OK)
    return CLI_EXIT_FAILURE;
  json_decref (out);
  return CLI_EXIT_OK;
}

static int
run (int argc, char **argv)
{
  struct vhdkit_create_params p = { .struct_size = sizeof (struct vhdkit_create_params), 0 };
  struct cli_progress prog;
  int progress = -1, r;
  char **ops;
  struct cli_opt opts[] = {
    CLI_ARG ("size", CLI_OPT_U64, &p.size, "SIZE",
             "virtual size, e.g. 10G (optional with --parent)"),
    CLI_CHOICE ("type", &p.type, cli_create_type_choices,
                "fixed|dynamic|differencing",
                "default: dynamic, or differencing with --parent"),
    CLI_ARG ("parent", CLI_OPT_STRING, &p.parent, "PARENT",
             "make a differencing image of PARENT"),
    CLI_OPTS_LAYOUT (&p),
    CLI_OPTS_PROGRESS (&progress),
    CLI_END,
  };

  r = cli_parse_args (&cli_verb_create, opts, argc, argv, &ops);
  if (r != CLI_CONTINUE)
    return r;
  if (p.parent && p.type != 0 && p.type != VHDKIT_TYPE_DIFFERENCING)
    return cli_usage ("--parent makes a differencing image; "
                      "it cannot be combined with a fixed or dynamic --type");
  if (p.parent == NULL && p.type == VHDKIT_TYPE_DIFFERENCING)
    return cli_usage ("--type differencing needs --parent");
  if (p.parent == NULL && !cli_given (opts, "size"))
    return cli_usage ("--size is required (unless --parent is given)");

  if (remote_socket ())
    return run_remote (ops[0], &p, progress);

  cli_progress_begin (&prog, progress);   /* only fixed images report */
  p.progress = cli_progress_update;
  p.progress_opaque = &prog;
  r = vhdkit_disk_create (ops[0], &p);
  cli_progress_end (&prog);
  return r == -1 ? cli_lib_error () : CLI_EXIT_OK;
}

const struct cli_verb cli_verb_create = {
  "create", "PATH", 1, "--size SIZE [OPTIONS]", "Create a new image", run,
};
