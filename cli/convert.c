/* vhdkit convert: copy an image into a new one of another format, type,
 * block or sector size.  Zero and unallocated ranges stay unallocated.
 * With --existing the copy goes into an image that already exists (for
 * a full backup onto a tracked disk); DST then keeps its own layout, so
 * the options that choose one are refused.
 *
 * Through vhdkitd it is ConvertVirtualHardDisk, into a new VHDX only.
 */
#include "vhdkit.h"
#include "cli.h"
#include "remote.h"

static int
run_remote (const char *src, const char *dst,
            const struct vhdkit_create_params *p, int progress)
{
  json_t *s, *sd, *out;

  if (p->existing)
    return remote_unsupported ("--existing", "the service converts into a "
                               "new image only");
  if ((s = remote_path (src)) == NULL)
    return CLI_EXIT_FAILURE;
  if ((sd = remote_setting_data (dst, p)) == NULL) {
    json_decref (s);
    return CLI_EXIT_FAILURE;
  }
  if (remote_run (REMOTE_IMS, "ConvertVirtualHardDisk",
                  json_pack ("{s:o, s:o}", "SourcePath", s,
                             "VirtualDiskSettingData", sd),
                  progress, &out) != CLI_EXIT_OK)
    return CLI_EXIT_FAILURE;
  json_decref (out);
  return CLI_EXIT_OK;
}

static int
run (int argc, char **argv)
{
  static const char *const layout[] = {
    "type", "format", "block-size", "logical-sector-size",
    "physical-sector-size",
  };
  struct vhdkit_create_params p = { .struct_size = sizeof (struct vhdkit_create_params), 0 };
  struct cli_progress prog;
  int progress = -1, existing = 0, r;
  size_t i;
  char **ops;
  struct cli_opt opts[] = {
    CLI_CHOICE ("type", &p.type, cli_convert_type_choices, "fixed|dynamic",
                "type of DST (default: dynamic)"),
    CLI_OPTS_LAYOUT (&p),
    CLI_FLAG ("existing", &existing, 1,
              "write into DST, which exists and is at least as large as SRC"),
    CLI_OPTS_PROGRESS (&progress),
    CLI_END,
  };

  r = cli_parse_args (&cli_verb_convert, opts, argc, argv, &ops);
  if (r != CLI_CONTINUE)
    return r;
  for (i = 0; existing && i < sizeof layout / sizeof layout[0]; i++) {
    if (cli_given (opts, layout[i]))
      return cli_usage ("--%s cannot be used with --existing (DST keeps "
                        "its own layout)", layout[i]);
  }
  p.existing = existing;
  if (remote_socket ())
    return run_remote (ops[0], ops[1], &p, progress);

  cli_progress_begin (&prog, progress);
  p.progress = cli_progress_update;
  p.progress_opaque = &prog;
  r = vhdkit_disk_convert (ops[0], ops[1], &p);
  cli_progress_end (&prog);
  return r == -1 ? cli_lib_error () : CLI_EXIT_OK;
}

const struct cli_verb cli_verb_convert = {
  "convert", "SRC DST", 2, "[OPTIONS]",
  "Copy an image into a new image of another format or type, or into an "
  "existing one", run,
};
