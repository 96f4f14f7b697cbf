/* vhdkit CLI through vhdkitd: with --connect SOCKET (or VHDKIT_CONNECT
 * in the environment) a verb calls the service's methods over its JSON
 * door (docs/vhdkitd.8.md) instead of opening files, and prints what the
 * local verb prints.  Each verb file maps itself (its run_remote); this
 * is the client they share: one HTTP request at a time over the Unix
 * socket (libcurl), jobs polled until they leave JobState 4, the
 * service's ReturnValue and ErrorDescription reported as the CLI reports
 * the library's errors (cli_error: same codes, same --json object).
 */
#ifndef VHDKIT_CLI_REMOTE_H
#define VHDKIT_CLI_REMOTE_H

#include <stdint.h>
#include <jansson.h>

#define REMOTE_IMS "Msvm_ImageManagementService"
#define REMOTE_CTS "Vhdkit_ChangeTrackingService"
#define REMOTE_VSS "Vhdkit_VHDSetService"

/* --connect SOCKET (it wins over VHDKIT_CONNECT). */
void remote_set_socket (const char *path);

/* The socket to call: --connect, else VHDKIT_CONNECT unless empty.
 * NULL: the verb runs locally. */
const char *remote_socket (void);

/* PATH as the service gets it, a JSON string: absolute, with no "." or
 * ".." component (those are resolved in the folder that holds the file,
 * which must exist).  SET.vhds@SNAPSHOT is refused.  NULL after
 * reporting. */
json_t *remote_path (const char *path);

/* An embedded Msvm_VirtualHardDiskSettingData for a new image at PATH
 * from P (format, type, sizes, parent) as create and convert take them;
 * the service makes VHDX only, so a raw image (by --format or by name)
 * is refused.  NULL after reporting. */
struct vhdkit_create_params;
json_t *remote_setting_data (const char *path,
                             const struct vhdkit_create_params *p);

/* "VERB: WHAT is not available through vhdkitd" with the reason, as
 * Not Supported (32770).  Returns CLI_EXIT_FAILURE. */
int remote_unsupported (const char *what, const char *why);

/* Call CLASS.METHOD with IN (the reference is taken).  If the service
 * starts a job, poll it until it ends, drawing a bar from its
 * PercentComplete as cli_progress_begin's MODE says; SIGINT or SIGTERM
 * meanwhile asks the service to terminate the job (RequestStateChange 4)
 * and then waits for it to end.  On success returns 0 with *OUT the
 * out-parameters (the answer, or the completed job's OutParameters; to
 * be released with json_decref).  Otherwise returns CLI_EXIT_FAILURE
 * after reporting the service's code and sentence. */
int remote_run (const char *klass, const char *method, json_t *in,
                int progress_mode, json_t **out);

/* json_unpack on an answer of METHOD; a value of another shape is the
 * service's fault and reported as Failed (32768).  0 or
 * CLI_EXIT_FAILURE. */
int remote_unpack (json_t *v, const char *method, const char *fmt, ...);

/* The socket of a vhdkitd that holds one of the N images PATHS open
 * (asked with Vhdkit_Service.ListOpenDisks on VHDKIT_CONNECT and the
 * default sockets), to be freed; NULL if none does or none answers. */
char *remote_holder (char *const *paths, int n);

#endif /* VHDKIT_CLI_REMOTE_H */
