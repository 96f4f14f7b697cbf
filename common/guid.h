/* GUIDs as VHDX stores them: 16 bytes, the first three fields
 * little-endian (Microsoft's mixed-endian binary form).  vhdkit keeps
 * them as raw 16-byte arrays so that on-disk bytes and memory agree. */
#ifndef VHDKIT_GUID_H
#define VHDKIT_GUID_H

#include <stdbool.h>
#include <stdint.h>

struct guid { uint8_t b[16]; };

#define GUID_TEXT_LEN 36   /* xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx */

/* A new random (version 4) GUID from getrandom(2); 0 or -1. */
int guid_generate (struct guid *g);
bool guid_is_zero (const struct guid *g);
bool guid_eq (const struct guid *a, const struct guid *b);
/* Lowercase text without braces into OUT (at least 37 bytes). */
void guid_to_text (const struct guid *g, char *out);
/* Parse text with or without braces, any case.  0 or -1. */
int guid_from_text (struct guid *g, const char *s);
/* Build from the canonical text of a constant; aborts on a typo. */
struct guid guid_const (const char *s);

#endif
