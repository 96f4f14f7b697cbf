/* vhdkit merge: write a differencing image's sectors into its parent.
 * The child stays in place; interrupting (Ctrl-C) cancels cleanly and
 * leaves the parent valid.  Through vhdkitd it is MergeVirtualHardDisk
 * into the parent that GetVirtualHardDiskSettingData names.
 */
#include "vhdkit.h"
#include "cli.h"
#include "remote.h"

static int
run_remote (const char *path, int progress)
{
  json_t *p = remote_path (path), *sd, *out;
  const char *parent;
  int r;

  if (p == NULL)
    return CLI_EXIT_FAILURE;
  if (remote_run (REMOTE_IMS, "GetVirtualHardDiskSettingData",
                  json_pack ("{s:O}", "Path", p), 0, &sd) != CLI_EXIT_OK) {
    json_decref (p);
    return CLI_EXIT_FAILURE;
  }
  r = remote_unpack (sd, "GetVirtualHardDiskSettingData",
                     "{s:{s:s}}", "SettingData", "ParentPath", &parent);
  if (r == CLI_EXIT_OK && *parent == '\0')
    r = cli_error (VHDKIT_RC_INVALID_PARAMETER, "%s: not a differencing "
                   "image: nothing to merge", path);
  if (r == CLI_EXIT_OK)
    r = remote_run (REMOTE_IMS, "MergeVirtualHardDisk",
                    json_pack ("{s:O, s:s}", "SourcePath", p,
                               "DestinationPath", parent), progress, &out);
  if (r == CLI_EXIT_OK)
    json_decref (out);
  json_decref (sd);
  json_decref (p);
  return r;
}

static int
run (int argc, char **argv)
{
  struct cli_progress prog;
  int progress = -1, r;
  char **ops;
  struct cli_opt opts[] = {
    CLI_OPTS_PROGRESS (&progress),
    CLI_END,
  };

  r = cli_parse_args (&cli_verb_merge, opts, argc, argv, &ops);
  if (r != CLI_CONTINUE)
    return r;
  if (remote_socket ())
    return run_remote (ops[0], progress);

  cli_progress_begin (&prog, progress);
  r = vhdkit_disk_merge (ops[0], cli_progress_update, &prog);
  cli_progress_end (&prog);
  return r == -1 ? cli_lib_error () : CLI_EXIT_OK;
}

const struct cli_verb cli_verb_merge = {
  "merge", "CHILD", 1, "[OPTIONS]",
  "Merge a differencing image into its parent", run,
};
