/* CRC-32C (Castagnoli), as VHDX headers, region tables and log entries
 * use it (MS-VHDX 2.2.2), and as vhdkit's own sidecar formats use it. */
#ifndef VHDKIT_CRC32C_H
#define VHDKIT_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Continue a CRC: start with crc = 0. */
uint32_t crc32c (uint32_t crc, const void *buf, size_t len);

/* The CRC of BUF[0..LEN) computed as if the 4 bytes at CSUM_OFF were
 * zero, the form every VHDX checksum takes. */
uint32_t crc32c_skip (const void *buf, size_t len, size_t csum_off);

#endif
