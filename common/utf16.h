/* UTF-8 <-> UTF-16LE, for VHDX parent locator keys and values and the
 * file identifier's creator string (MS-VHDX 2.6.2.6.2). */
#ifndef VHDKIT_UTF16_H
#define VHDKIT_UTF16_H

#include <stddef.h>
#include <stdint.h>

/* Decode LEN bytes of UTF-16LE into a new NUL-terminated UTF-8 string.
 * Returns NULL with errno EILSEQ on malformed input (unpaired surrogates,
 * odd length, an embedded NUL) or ENOMEM. */
char *utf16le_to_utf8 (const uint8_t *in, size_t len);

/* Encode a UTF-8 string as UTF-16LE into a new buffer; *OUTLEN gets its
 * byte length.  NULL with errno EILSEQ or ENOMEM. */
uint8_t *utf8_to_utf16le (const char *in, size_t *outlen);

#endif
